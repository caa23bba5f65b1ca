// Hundreds of seeded simulations with injected faults; a failure prints the seed and step
// that replay it with `stockdrop simulate --seed N --steps M`.
import Engine
import Testing

@Suite("deterministic simulation") struct SimulationTests {
    @Test(arguments: 0..<4) func manySeedsKeepEveryInvariant(shard: Int) async throws {
        var totals = (
            requests: 0, purchased: 0, failed: 0, crashes: 0, expired: 0, fromMemory: 0, reloadsFailed: 0, acksLost: 0,
            activationsFailed: 0, forwarded: 0, takeovers: 0, fenced: 0, sentBehind: 0, landedWhileStopped: 0
        )
        for seed in stride(from: UInt64(shard), to: 400, by: 4) {
            let summary = try await Simulator(seed: seed).run(steps: 300)
            totals.requests += summary.requests
            totals.purchased += summary.purchased
            totals.failed += summary.batchesFailed
            totals.crashes += summary.crashes
            totals.expired += summary.expired
            totals.fromMemory += summary.answeredFromMemory
            totals.reloadsFailed += summary.recoveriesFailed
            totals.activationsFailed += summary.activationsFailed
            totals.acksLost += summary.acknowledgementsLost
            totals.forwarded += summary.forwarded
            totals.takeovers += summary.takeovers
            totals.fenced += summary.fencedBatches
            totals.sentBehind += summary.batchesSentBehindAnother
            totals.landedWhileStopped += summary.landedWhileStopped
        }
        // The runs must actually exercise what they claim to: purchases, faults, crashes, expiries,
        // failed reloads of a running machine (DropMachine.recoveryFailed) and failed
        // activations, lost acknowledgements, and answers from memory (each held to the store's).
        #expect(totals.purchased > 100)
        #expect(totals.fromMemory > 1_000)
        #expect(totals.reloadsFailed > 20, "\(totals)")
        #expect(totals.activationsFailed > 20, "\(totals)")
        #expect(totals.acksLost > 20)
        // Two batches in flight: one sent behind another's lock, and one landing after the
        // machine stopped deciding (its callers hear the store, then the machine reloads).
        #expect(totals.sentBehind > 50, "\(totals)")
        #expect(totals.landedWhileStopped > 10, "\(totals)")
        #expect(totals.failed > 50)
        #expect(totals.crashes > 50)
        #expect(totals.expired > 50)
        // Two owners: claims forwarded to the lease holder, leases taken over after a pause,
        // and the paused owner's batches fenced when it resumed.
        #expect(totals.forwarded > 1_000)
        #expect(totals.takeovers > 20)
        #expect(totals.fenced > 20)
    }

    @Test func aSeedReplaysExactly() async throws {
        let first = try await Simulator(seed: 42).run(steps: 500)
        let second = try await Simulator(seed: 42).run(steps: 500)
        #expect(first.description == second.description)
    }
}
