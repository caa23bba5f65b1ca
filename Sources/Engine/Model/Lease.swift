// Ownership of drops across server instances (docs/design.md "Scale-out"): an engine
// runs a drop's actor only while it holds the drop's lease in the store. The epoch fences:
// a batch carries the epoch its actor loaded with, and the store refuses it once the lease
// has changed hands.
import Foundation

/// Who an engine is, and how long the leases it takes last.
public struct LeaseOwner: Sendable, Hashable {
    /// The identity leases are held under. One process, one identity: two processes under one
    /// identity would both trust their memory of a drop (a restart while the old process
    /// still runs, two replicas given one name), so a server's is its operator-given name
    /// plus a random incarnation (`incarnation(of:)`).
    public let instance: String
    public let leaseMilliseconds: Int

    public init(instance: String, leaseMilliseconds: Int = Defaults.leaseMilliseconds) {
        precondition(!instance.isEmpty && instance.utf8.count <= 200, "an instance id has 1 to 200 bytes")
        precondition(
            leaseMilliseconds >= 4 * Defaults.leaseSafetyMarginMilliseconds,
            "a lease must outlast its safety margin several times over")
        self.instance = instance
        self.leaseMilliseconds = leaseMilliseconds
    }

    /// A name no other process shares: host, process id and a random suffix, so a restarted
    /// process is a new owner and never mistakes its predecessor's leases for its own.
    public static func unique(leaseMilliseconds: Int = Defaults.leaseMilliseconds) -> LeaseOwner {
        let host = ProcessInfo.processInfo.hostName.prefix(60)
        return incarnation(
            of: "\(host)-\(ProcessInfo.processInfo.processIdentifier)", leaseMilliseconds: leaseMilliseconds)
    }

    /// `name~xxxxxxx`: this process's incarnation of an instance name. A restarted instance is
    /// a new owner and takes its old drops over only once their leases lapse.
    public static func incarnation(of name: String, leaseMilliseconds: Int = Defaults.leaseMilliseconds) -> LeaseOwner {
        let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        return LeaseOwner(instance: "\(name.prefix(180))~\(suffix)", leaseMilliseconds: leaseMilliseconds)
    }

    /// The operator-given name inside an incarnation (`s1` of `s1~k3j9…`); a name without an
    /// incarnation is its own.
    public static func name(ofIncarnation owner: String) -> String {
        String(owner.prefix { $0 != "~" })
    }

    /// How long memory may trust a lease renewed by a request sent at `sentAt`: the store set
    /// its expiry by its own clock after the request arrived, so `sentAt + lease` is no later
    /// than that expiry; the margin covers clocks that run at slightly different rates.
    public func trustedUntil(sentAt: Date) -> Date {
        sentAt.addingTimeInterval(Double(leaseMilliseconds - safetyMarginMilliseconds) / 1000)
    }

    /// The fixed floor, or a tenth of a long lease (clock rates drift in proportion to it).
    public var safetyMarginMilliseconds: Int { max(Defaults.leaseSafetyMarginMilliseconds, leaseMilliseconds / 10) }
}

/// The lease a batch is written under.
public struct BatchLease: Sendable, Equatable {
    public let epoch: Int64
    public let milliseconds: Int

    public init(epoch: Int64, milliseconds: Int) {
        self.epoch = epoch
        self.milliseconds = milliseconds
    }
}

/// What a renewal found: leases extended, and leases gone (their epoch moved on). A lease in
/// neither was busy (its batch in flight holds the drop's row and renews it on commit).
public struct LeaseRenewal: Sendable, Equatable {
    public var renewed: Set<DropID>
    public var lost: Set<DropID>

    public init(renewed: Set<DropID>, lost: Set<DropID>) {
        self.renewed = renewed
        self.lost = lost
    }
}

/// What asking for a drop's lease gave.
public enum LeaseGrant: Sendable, Equatable {
    /// The lease is this engine's under `epoch`, with the drop as it stood when it was taken.
    /// `previousOwner` is set when another instance's lapsed lease was taken over.
    case granted(DropRecovery, epoch: Int64, previousOwner: String?)
    /// Another instance holds a live lease on the drop.
    case heldElsewhere(owner: String)
}
