// Sharded runs: the slices of a scenario are disjoint and together are the scenario for any
// shard count, histograms add exactly, the clock offset keeps the shortest round trip, and a
// merge refuses anything but one run's complete set of shards, naming each problem.
import Engine
import Foundation
import Testing

@testable import LoadGen

@Suite struct ShardTests {
    /// Three populations of different arrival models, one with a rate window shorter than its
    /// count (so some users never arrive) and one choosing among drops at random.
    static func scenario() -> Scenario {
        var scenario = ScenarioFixtures.scenario(users: 1_000, stock: 10, drops: 3)
        var ramp = scenario.populations[0]
        ramp.count = 777
        ramp.arrival = .ramp(toPerSecond: 400, overSeconds: 2)
        ramp.drop = .one(1)
        var rate = scenario.populations[0]
        rate.count = 500
        rate.arrival = .rate(perSecond: 100, forSeconds: 3.333)
        scenario.populations += [ramp, rate]
        return scenario
    }

    static func plan(_ scenario: Scenario, _ shard: ShardSpec) -> [String] {
        StrategyLoad(scenario: scenario, target: NeverTarget(), live: LiveCounters(), progress: { _ in })
            .plannedUsers([11, 12, 13], shard: shard).map { user in
                var random = user.random
                return "\(user.user) \(user.drop) \(user.arrivalMicroseconds) \(random.next())"
            }
    }

    @Test(arguments: [1, 2, 3, 5, 7, 64, 2_500])
    func theSlicesAreDisjointAndTogetherAreTheScenario(count: Int) throws {
        let scenario = Self.scenario()
        let whole = Self.plan(scenario, .whole)
        #expect(whole.count == 1_000 + 777 + 334)
        var union: [String] = []
        for index in 0..<count {
            let spec = try ShardSpec.parse("\(index)/\(count)").get()
            let slice = Self.plan(scenario, spec)
            // Even slices: a shard gets its share of every population, give or take one each.
            #expect(abs(slice.count - whole.count / count) <= 3)
            union += slice
        }
        // Same users, same drops, same arrival times and the same seeded choices, each once.
        #expect(union.count == whole.count)
        #expect(Set(union).count == union.count)
        #expect(Set(union) == Set(whole))
    }

    @Test func aShardsSliceSpansTheWholeSchedule() throws {
        let scenario = Self.scenario()
        let arrivals = { (shard: ShardSpec) in
            StrategyLoad(scenario: scenario, target: NeverTarget(), live: LiveCounters(), progress: { _ in })
                .plannedUsers([11, 12, 13], shard: shard).map(\.arrivalMicroseconds)
        }
        let whole = arrivals(.whole)
        let last = try arrivals(ShardSpec.parse("2/3").get())
        // Round-robin dealing: the last shard's users arrive from the start to the end, not in
        // a block at one end of the ramp.
        #expect(last.min() ?? -1 <= 10_000)
        #expect((last.max() ?? 0) >= (whole.max() ?? 0) - 20_000)
    }

    @Test func shardSpecsParseLikeACompletionIndex() {
        #expect((try? ShardSpec.parse("0/3").get()) != nil)
        #expect((try? ShardSpec.parse("2/3").get())?.description == "2/3")
        for bad in ["3/3", "-1/3", "1/0", "1", "a/b", "1/3/4", "", "0/10001"] {
            guard case .failure = ShardSpec.parse(bad) else {
                Issue.record("\(bad) parsed")
                continue
            }
        }
    }

    @Test func histogramsOfShardsAddUpToTheHistogramOfEveryValue() throws {
        var random = SplitMix64(seed: 7)
        let values = (0..<30_000).map { _ in Int64.random(in: 1...5_000_000, using: &random) }
        var shards = [LatencyHistogram(), LatencyHistogram(), LatencyHistogram()]
        for (index, value) in values.enumerated() { shards[index % 3].record(value) }
        var sum = LatencyHistogram()
        for shard in shards {
            // Written and read back first, as the merge reads them from the shards' files.
            let copy = try JSONDecoder().decode(LatencyHistogram.self, from: JSONEncoder().encode(shard))
            #expect(copy == shard)
            sum.add(copy)
        }
        let all = LatencyHistogram(values)
        #expect(sum == all)
        #expect(sum.totalCount == 30_000)
        #expect(sum.percentiles == all.percentiles)
        #expect(sum.buckets == all.buckets)
    }

    @Test func aHistogramFileWhoseBucketsDoNotAddUpIsRefused() throws {
        let text =
            #"{"unit":"microseconds","highestTrackableValue":3600000000,"significantDigits":3,"totalCount":3,"buckets":[[100,1]]}"#
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(LatencyHistogram.self, from: Data(text.utf8)) }
        let otherConfiguration =
            #"{"unit":"microseconds","highestTrackableValue":60000000,"significantDigits":2,"totalCount":1,"buckets":[[100,1]]}"#
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(LatencyHistogram.self, from: Data(otherConfiguration.utf8))
        }
    }

    @Test func theClockOffsetKeepsTheShortestRoundTrip() throws {
        let samples = [
            ClockOffset.Sample(
                sentEpochMicroseconds: 1_000, databaseEpochMicroseconds: 6_000, receivedEpochMicroseconds: 1_900),
            // 200 µs round trip: the database read 5,000 µs ahead of our midpoint (1_100).
            ClockOffset.Sample(
                sentEpochMicroseconds: 2_000, databaseEpochMicroseconds: 7_100, receivedEpochMicroseconds: 2_200),
            ClockOffset.Sample(
                sentEpochMicroseconds: 3_000, databaseEpochMicroseconds: 9_000, receivedEpochMicroseconds: 3_500),
        ]
        let best = try #require(ClockOffset.best(of: samples))
        #expect(best.roundTripMicroseconds == 200)
        #expect(best.offsetMicroseconds == 5_000)
        #expect(best.uncertaintyMicroseconds == 100)
        #expect(best.samples == 3)
        #expect(ClockOffset.best(of: []) == nil)
    }

    static func manifest(
        _ index: Int, of count: Int, run: RunFile, offsetMicroseconds: Int64 = 0, uncertainty: Int64 = 50
    ) throws -> ShardManifest {
        let clock = ClockOffset(
            offsetMicroseconds: offsetMicroseconds, uncertaintyMicroseconds: uncertainty,
            roundTripMicroseconds: 2 * uncertainty, samples: 16,
            measuredAtEpochMicroseconds: run.startAtEpochMicroseconds)
        return ShardManifest(
            runID: run.runID, scenario: run.scenario, scenarioDigest: run.scenarioDigest, seed: run.seed,
            shard: try ShardSpec.parse("\(index)/\(count)").get(), strategy: .actor, target: run.target,
            host: "h\(index)",
            plannedStartAtEpochMicroseconds: run.startAtEpochMicroseconds,
            startedAtEpochMicroseconds: run.startAtEpochMicroseconds - offsetMicroseconds, beganLateMicroseconds: 0,
            clockBefore: clock,
            clockAfter: clock, plannedUsers: 10, neverSent: 0, requests: 0, loadSeconds: 1,
            targetCPUBeforeMicroseconds: nil,
            targetCPUAfterMicroseconds: nil, harnessPeakResidentBytes: 0, stockSamples: [], databaseURL: "")
    }

    @Test func aMergeAddsUpWhatEachShardsStopCut() throws {
        let scenario = ScenarioFixtures.scenario(users: 100, stock: 10)
        let run = RunFile(scenario: scenario, drops: [5], startAt: Date(), target: "http://127.0.0.1:1")
        var manifests = try (0..<3).map { try Self.manifest($0, of: 3, run: run) }
        manifests[0].shedAtStop = 2
        manifests[0].unsentAtStop = ["purchase": 3, "reserve": 1]
        manifests[2].unsentAtStop = ["purchase": 4, "cancel": 1]
        // What a shard writes is what the merge reads.
        let decoded = try JSONDecoder().decode(ShardManifest.self, from: JSONEncoder().encode(manifests[0]))
        #expect(decoded.shedAtStop == 2 && decoded.unsentAtStop == ["purchase": 3, "reserve": 1])
        let merged = ShardMerge.atStop(manifests)
        #expect(merged.shed == 2)
        #expect(merged.unsent == [.purchase: 7, .reserve: 1, .cancel: 1])
    }

    @Test func aMergeRefusesAnythingButOneRunsCompleteSetNamingEachProblem() throws {
        let scenario = ScenarioFixtures.scenario(users: 100, stock: 10)
        let run = RunFile(scenario: scenario, drops: [5], startAt: Date(), target: "http://127.0.0.1:1")
        let complete = try (0..<3).map { ("d\($0)", run, try Self.manifest($0, of: 3, run: run)) }
        #expect(ShardMerge.problems(complete).isEmpty)

        let missing = ShardMerge.problems(Array(complete.prefix(2)))
        #expect(missing == ["shard 2/3 missing: a merge needs every shard's directory"])

        let twice = ShardMerge.problems(complete + [("again", run, try Self.manifest(1, of: 3, run: run))])
        #expect(twice == ["shard 1/3 appears twice: d1 and again"])

        var otherRun = RunFile(scenario: scenario, drops: [5], startAt: Date(), target: "http://127.0.0.1:1")
        otherRun.startAtEpochMicroseconds = run.startAtEpochMicroseconds
        let foreign = ShardMerge.problems(
            Array(complete.prefix(2)) + [("other", otherRun, try Self.manifest(2, of: 3, run: otherRun))])
        #expect(foreign.count == 1)
        #expect(foreign.first?.contains("other has run file `\(otherRun.runID)`") == true)

        var reseeded = try Self.manifest(2, of: 3, run: run)
        reseeded.seed += 1
        reseeded.scenarioDigest = "0000000000000000"
        let mixed = ShardMerge.problems(Array(complete.prefix(2)) + [("d2", run, reseeded)])
        #expect(mixed.contains { $0.hasPrefix("d2 has scenario fixture (digest 0000000000000000)") })
        #expect(mixed.contains { $0.hasPrefix("d2 has seed 100") })

        let recount = ShardMerge.problems(complete + [("d3", run, try Self.manifest(3, of: 4, run: run))])
        #expect(recount.contains { $0.hasPrefix("d3 has shard count 4, d0 has 3") })

        // 100 ms tolerance; 150 ms of uncertainty cannot be compared with the rows' times.
        let far = try Self.manifest(1, of: 3, run: run, offsetMicroseconds: 40_000, uncertainty: 150_000)
        let vague = ShardMerge.problems([complete[0], ("d1", run, far), complete[2]])
        #expect(vague.count == 1)
        #expect(
            vague.first?.hasPrefix(
                "shard 1/3 (d1): its clock's uncertainty 150.000 ms exceeds the checker's tolerance 100.0 ms") == true)

        #expect(ShardMerge.problems([]) == ["no shard directories given"])
    }

    @Test func aMergedHistoryIsOnTheDatabasesClock() throws {
        let scenario = ScenarioFixtures.scenario(users: 100, stock: 10)
        let run = RunFile(scenario: scenario, drops: [5], startAt: Date(), target: "http://127.0.0.1:1")
        func record(_ user: UserID, sent: Int64) -> OperationRecord {
            OperationRecord(
                operation: .reserve, result: .ok, user: user, drop: 5, reservationID: user, purchaseID: nil,
                intendedMicroseconds: sent, sentMicroseconds: sent, answeredMicroseconds: sent + 1_000)
        }
        // Shard 0's clock is 30 ms behind the database's, shard 1's 20 ms ahead: both began at
        // the start instant on their own clocks, so their zeros are 50 ms apart on the database's.
        var shards: [ShardDirectory] = []
        for (index, offset) in [(0, Int64(30_000)), (1, Int64(-20_000))] {
            var manifest = try Self.manifest(index, of: 2, run: run, offsetMicroseconds: offset)
            manifest.startedAtEpochMicroseconds = run.startAtEpochMicroseconds
            let history = ClientHistory(
                records: [record(UserID(index + 1), sent: 5_000)],
                startedAtEpochMicroseconds: run.startAtEpochMicroseconds,
                cutOff: [5: ClientHistory.CutOff(users: index + 1, atMicroseconds: 9_000)])
            shards.append(
                ShardDirectory(
                    path: "d\(index)", runFile: run, manifest: manifest, history: history,
                    histograms: OperationHistograms(history.records)))
        }
        let merged = ShardMerge.history(shards)
        #expect(merged.startedAtEpochMicroseconds == run.startAtEpochMicroseconds - 20_000)
        #expect(merged.records.map(\.user) == [2, 1])
        #expect(merged.records.map(\.sentMicroseconds) == [5_000, 55_000])
        #expect(merged.records.map(\.latencyMicroseconds) == [1_000, 1_000])
        #expect(merged.cutOff[5] == ClientHistory.CutOff(users: 3, atMicroseconds: 59_000))
        #expect(ShardMerge.histograms(shards).histogram(.reserve).totalCount == 2)
    }

    @Test func theDigestIsTheSchedulesNotTheTargets() {
        let scenario = Self.scenario()
        var elsewhere = scenario
        elsewhere.target = .servers([URL(string: "http://10.0.0.1:8080")!])
        elsewhere.watchers = 5
        #expect(elsewhere.digest == scenario.digest)
        #expect(scenario.overriding(users: 999).digest != scenario.digest)
        #expect(scenario.overriding(seed: 1).digest != scenario.digest)
        let run = RunFile(scenario: scenario, drops: [1, 2, 3], startAt: Date(), target: "")
        #expect(run.mismatch(with: elsewhere) == nil)
        #expect(run.mismatch(with: scenario.overriding(stock: 1))?.contains("differs from the one set up") == true)
    }

    @Test func aRunClockWhoseZeroPassedIsAlreadyRunning() {
        let clock = RunClock(zeroAt: Date().addingTimeInterval(-2))
        #expect(clock.nowMicroseconds >= 2_000_000)
        #expect(clock.nowMicroseconds < 3_000_000)
        #expect(RunFile.startInstant("+30s", now: Date(timeIntervalSince1970: 100)) == Date(timeIntervalSince1970: 130))
        #expect(RunFile.startInstant("2026-12-01T18:00:00Z") == Date(timeIntervalSince1970: 1_796_148_000))
        #expect(RunFile.startInstant("soon") == nil)
    }

    /// A merge given the shared volume's directory reads the shard directories inside it (a
    /// Job in an image without a shell cannot expand a glob), each once, and nothing else.
    @Test func aDirectoryHoldingShardDirectoriesStandsForThem() throws {
        let root = NSTemporaryDirectory() + "stockdrop-expand-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        for name in ["ci-shard-1-of-2", "ci-shard-0-of-2", "ci-merged", "loose.txt"] {
            try FileManager.default.createDirectory(atPath: "\(root)/\(name)", withIntermediateDirectories: true)
        }
        for shard in ["ci-shard-0-of-2", "ci-shard-1-of-2"] {
            FileManager.default.createFile(atPath: "\(root)/\(shard)/shard.json", contents: Data("{}".utf8))
        }
        #expect(ShardDirectory.expand([root]) == ["\(root)/ci-shard-0-of-2", "\(root)/ci-shard-1-of-2"])
        #expect(
            ShardDirectory.expand(["\(root)/ci-shard-1-of-2", root]) == [
                "\(root)/ci-shard-1-of-2", "\(root)/ci-shard-0-of-2",
            ])
        // Not a directory at all: passed on, for the merge to name it.
        #expect(ShardDirectory.expand(["\(root)/missing"]) == ["\(root)/missing"])
    }
}
