// The watchers read frames by scanning them; what they read must be what a full decode reads,
// for single events, arrays of events, nested objects and escaped strings.
import Foundation
import Testing

@testable import LoadGen

@Suite struct LiveFrameReaderTests {
    @Test func scanningReadsWhatDecodingReads() {
        let purchase =
            #"{"type":"purchase.completed","dropId":3,"purchase":{"purchaseId":9,"buyerName":"a \"quoted\" } name","createdAt":"2026-11-27T19:04:48.100Z"},"committedAt":"2026-11-27T19:04:48.159Z"}"#
        let stock =
            #"{"type":"stock.changed","dropId":3,"totalStock":10,"availableStock":4,"reservedStock":5,"soldCount":1,"committedAt":"2026-11-27T19:04:48.160Z","version":1}"#
        let single = LiveFrameReader.events(in: stock)
        #expect(
            single == [
                LiveFrameEvent(
                    type: "stock.changed", dropID: 3, availableStock: 4, committedAtSeconds: 1_795_806_288.16)
            ])
        let batch = LiveFrameReader.events(in: "[" + purchase + "," + stock + "]")
        #expect(batch.map(\.type) == ["purchase.completed", "stock.changed"])
        #expect(batch[0].dropID == nil && batch[1].availableStock == 4)
        let expected = ISO8601DateFormatter()
        expected.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let date = expected.date(from: "2026-11-27T19:04:48.159Z")!.timeIntervalSince1970
        #expect(abs((batch[0].committedAtSeconds ?? 0) - date) < 1e-6)
        #expect(LiveFrameReader.events(in: "[]").isEmpty)
        #expect(LiveFrameReader.seconds(of: "1970-01-01T00:00:00Z") == 0)
        #expect(LiveFrameReader.seconds(of: "garbage") == nil)
    }
}
