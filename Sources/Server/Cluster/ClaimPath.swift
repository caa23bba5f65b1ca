// A claim is decided where its drop is decided. The engine is asked first (`route`): here, the
// claim goes to the drop's handle; at another instance, it is sent there (`ClaimForwarder`) and
// the owner's answer returned unchanged; nothing was applied here either way. A claim that was
// itself forwarded is never forwarded again (the hop limit): two instances that disagree for
// a moment about the owner answer 503 `owner_changing` instead of ping-ponging. A drop whose
// owner moved as the claim reached it (a lease taken between the route and the claim, or an
// owner that no longer runs it) is asked about once more, so a drop changing hands costs its
// buyers a hop, not a 503.
import Engine
import HTTPTypes
import Hummingbird

struct ClaimPath: Sendable {
    let inventory: any Inventory
    let forwarder: ClaimForwarder

    /// The response to a claim on `drop`: `here`'s, when the drop is decided here.
    func decide<Answer: ResponseGenerator>(
        _ drop: DropID, _ request: Request, context: StockdropContext,
        here: (any DropClaims) async throws -> Answer
    ) async throws -> Response {
        let sender = request.headers[.stockdropForwardedBy]
        let leases = inventory.leases
        // A claim forwarded here for a drop this instance does not run (it handed the drop back,
        // or stepped down) is not a reason to take the lease again: the sender is told, forgets
        // this owner and asks the store itself.
        if sender != nil, let leases, !leases.runs(drop) { throw APIError(.ownerChanging, ClaimForwarder.changing) }
        var askedAgain = false
        while true {
            let owner: String?
            switch try await inventory.route(drop) {
            case .unknown:
                throw APIError(rejection: .unknownDrop)
            case .local(let claims):
                do {
                    let response = try await here(claims).response(from: request, context: context)
                    forwarder.answered(drop, forwardedBy: sender)
                    return response
                } catch let error as EngineError where error.code == .notOwner || error.code == .fenced {
                    // The lease moved between the route and the claim; nothing was applied.
                    owner = error.owner
                } catch let error as APIError {
                    // Rejections (sold out, already holding) are this owner's answers too.
                    forwarder.answered(drop, forwardedBy: sender)
                    throw error
                }
            case .remote(let holder):
                owner = holder
            }
            guard sender == nil else { throw forwarder.refused() }
            guard let owner, owner != forwarder.instance else {
                // No owner named (the lease is between owners): ask the store once more.
                guard !askedAgain else { throw forwarder.refused() }
                leases?.forgetOwner(of: drop)
                askedAgain = true
                continue
            }
            let (answer, ownerMoved) = try await forwarder.forward(request, on: drop, to: owner, context: context)
            guard ownerMoved, !askedAgain else { return answer }
            askedAgain = true
        }
    }
}
