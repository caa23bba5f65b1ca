// Claims that reach a drop while its actor is being activated (the lease taken, the drop and
// its holds loaded) wait here in the order they came, and enter the actor in that order once
// it exists, before any claim that came after. Each of them waiting on the activation alone
// was resumed in an order nobody chose, and claims arriving just after the actor existed went
// straight to it: at a 50,000-buyer sale's first instant the 14,244 buyers who came during the
// load all heard `sold_out`, while the 1,000 units went to buyers who came ~100 ms later.
import DequeModule
import Foundation
import Synchronization

final class ActivationLine: ClaimDecider {
    /// How the activation ended, for the claims that came during it and those still to come
    /// through this line.
    enum Ending: Sendable {
        case actor(DropActor)
        case unknown
        case remote(owner: String)
        case failed(EngineError)
    }

    private struct Waiting {
        let claim: DropActor.Claim
        let continuation: CheckedContinuation<DropMachine.Answer, any Error>
    }

    /// The line ended between a claim's look at it and its place in it: look again.
    private struct EndedMeanwhile: Error {}

    let dropID: DropID
    private let clock: any WallClock
    private let state = Mutex<(waiting: Deque<Waiting>, ending: Ending?, actor: DropActor?)>(([], nil, nil))

    init(dropID: DropID, clock: any WallClock) {
        self.dropID = dropID
        self.clock = clock
    }

    /// Claims waiting for the activation (the queue-depth gauge counts them).
    var waitingCount: Int { state.withLock { $0.waiting.count } }

    /// The actor the line opens onto, from before that actor starts (`prepare`).
    var actor: DropActor? { state.withLock { $0.actor } }

    var claimClock: any WallClock { clock }

    /// The actor the line will open onto, named before it starts (a batch of its first sweep
    /// may be fenced, and the engine must then know the line's actor is the deposed one).
    func prepare(_ actor: DropActor) {
        state.withLock { $0.actor = actor }
    }

    /// Lets the claims in line into `actor`, oldest first, then sends every later claim
    /// straight to it: one turn of the actor takes the whole line and opens it under the
    /// line's lock (`DropActor.admitLine`), so a claim that finds it open reaches the actor
    /// after every claim that waited, and a line that claims keep joining still opens at once
    /// (a loop that opened only once it found the line empty could run as long as a sale).
    func open(onto actor: DropActor) async {
        prepare(actor)
        await actor.admitLine(self)
    }

    /// Every claim still in line, the line opened onto `actor` in the same step: called on the
    /// actor, within the turn that admits them.
    func takeAllAndOpen(
        onto actor: DropActor
    ) -> [(DropActor.Claim, CheckedContinuation<DropMachine.Answer, any Error>)] {
        finish(.actor(actor)).map { ($0.claim, $0.continuation) }
    }

    /// Ends the line without an actor here: every claim in it, and every later one through
    /// it, is answered as the activation found the drop.
    func end(_ ending: Ending) {
        for entry in finish(ending) {
            do { entry.continuation.resume(returning: try Self.answer(entry.claim, ending, dropID)) } catch {
                entry.continuation.resume(throwing: error)
            }
        }
    }

    /// Sets how the line ended and takes every claim still in it, in one step under its lock:
    /// a claim that joins later finds the ending instead.
    private func finish(_ ending: Ending) -> Deque<Waiting> {
        state.withLock { state in
            state.ending = ending
            defer { state.waiting.removeAll() }
            return state.waiting
        }
    }

    /// The claim's answer: at once from the actor once the line has opened, else after its
    /// turn in line.
    func decide(_ claim: DropActor.Claim) async throws -> DropMachine.Answer {
        while true {
            switch state.withLock({ $0.ending }) {
            case .actor(let actor):
                return try await actor.decide(claim)
            case let ending?:
                return try Self.answer(claim, ending, dropID)
            case nil:
                do {
                    return try await withCheckedThrowingContinuation { continuation in
                        let joined = state.withLock { state in
                            guard case .none = state.ending else { return false }
                            state.waiting.append(Waiting(claim: claim, continuation: continuation))
                            return true
                        }
                        if !joined { continuation.resume(throwing: EndedMeanwhile()) }
                    }
                } catch is EndedMeanwhile {
                    continue
                }
            }
        }
    }

    /// A claim's answer when the drop is not decided here.
    private static func answer(_ claim: DropActor.Claim, _ ending: Ending, _ drop: DropID) throws -> DropMachine.Answer
    {
        switch ending {
        case .actor: preconditionFailure("a claim for an open line goes to its actor")
        case .unknown: return claim.unknownDrop
        case .remote(let owner): throw EngineError.ownedElsewhere(drop, by: owner)
        case .failed(let error): throw error
        }
    }
}
