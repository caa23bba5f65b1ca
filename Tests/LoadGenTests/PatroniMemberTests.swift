// `stockdrop ha status` reads each node from Patroni's GET /patroni (answers as Patroni 3.0
// gives them: a replica's xlog has received and replayed positions, a primary's only its own,
// a Patroni whose PostgreSQL is down sends state and role alone).
import Foundation
import Testing

@testable import LoadGen

@Suite struct PatroniMemberTests {
    @Test func aReplicaSaysItsRoleTimelineAndReplayLag() {
        let json = #"""
            {"state": "running", "postmaster_start_time": "2026-12-06 19:46:23.1+00:00", "role": "replica",
             "server_version": 150010, "xlog": {"received_location": 71303168, "replayed_location": 71302144,
             "replayed_timestamp": null, "paused": false}, "timeline": 2, "replication_state": "streaming",
             "dcs_last_seen": 1796586860, "database_system_identifier": "7449", "patroni": {"version": "3.0.2", "scope": "stockdrop"}}
            """#
        let member = PatroniControl.Member(node: 2, patroniJSON: Data(json.utf8))
        #expect(member.role == "replica" && member.state == "running" && member.timeline == 2)
        #expect(member.replayLagBytes == 1_024)
    }

    @Test func aPrimaryHasNoReplayLag() {
        let json = #"{"state": "running", "role": "master", "xlog": {"location": 71303168}, "timeline": 3}"#
        let member = PatroniControl.Member(node: 1, patroniJSON: Data(json.utf8))
        #expect(member.role == "master" && member.timeline == 3 && member.replayLagBytes == nil)
    }

    @Test func aNodeThatDidNotAnswerOrAnsweredLittleSaysNothingMore() {
        let silent = PatroniControl.Member(node: 3, patroniJSON: nil)
        #expect(silent.role == nil && silent.state == nil && silent.timeline == nil)
        let bare = PatroniControl.Member(node: 3, patroniJSON: Data(#"{"state": "stopped", "role": "demoted"}"#.utf8))
        #expect(bare.role == "demoted" && bare.state == "stopped" && bare.timeline == nil)
        let garbage = PatroniControl.Member(node: 3, patroniJSON: Data("<html>".utf8))
        #expect(garbage.role == nil)
    }
}
