// Invariants 5 and 6: what clients were told against what the rows say. Pure: rows and
// records in, verdicts out, so planted faults can be tested without a database too.
import Engine

enum ClientHistoryCheck {
    /// Invariant 5: every acknowledged success is in the database, and every purchase or hold
    /// in the database was acknowledged to a client or is explained by one of that client's
    /// indeterminate requests (an error or timeout) of the same kind on the same drop. One
    /// such request explains one row at most, and only a row written after it was sent (less
    /// the clock tolerance): a lost answer cannot account for two rows, nor for an older one.
    static func acknowledgedWritesDurable(
        _ rows: CheckedRows, _ history: ClientHistory, toleranceMicroseconds: Int64
    ) -> (InvariantResult, lostWrites: Int) {
        let reservations = Dictionary(rows.reservations.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let purchases = Dictionary(rows.purchases.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var lost: [String] = []
        var toldReservations: Set<ReservationID> = []
        var toldPurchases: Set<PurchaseID> = []
        struct Key: Hashable {
            var drop: DropID
            var user: UserID
            var operation: OperationKind
        }
        // When each key's indeterminate requests were sent, on the database's clock.
        var indeterminate: [Key: [Int64]] = [:]
        let zero = history.startedAtEpochMicroseconds

        for record in history.records {
            if record.result.isIndeterminate {
                let key = Key(drop: record.drop, user: record.user, operation: record.operation)
                indeterminate[key, default: []].append(zero + record.sentMicroseconds)
                continue
            }
            // A reserve answered `already_holding` may name the hold (a server target says
            // which): that hold must be the caller's on that drop, as a new one must.
            let namesHold = record.result == .ok || record.result == .rejected(.alreadyHolding)
            guard namesHold else { continue }
            switch record.operation {
            case .reserve:
                guard let id = record.reservationID else { continue }
                toldReservations.insert(id)
                if let row = reservations[id], row.drop == record.drop, row.user == record.user { continue }
                lost.append(
                    "user \(record.user) was told \(record.result == .ok ? "" : "it already holds ")reservation \(id) on drop \(record.drop); the database has \(reservations[id].map { "it for user \($0.user) on drop \($0.drop)" } ?? "no such reservation")"
                )
            case .purchase:
                guard let id = record.purchaseID else { continue }
                toldPurchases.insert(id)
                if let row = purchases[id], row.drop == record.drop, row.user == record.user { continue }
                lost.append(
                    "user \(record.user) was told purchase \(id) on drop \(record.drop); the database has \(purchases[id].map { "it for user \($0.user) on drop \($0.drop)" } ?? "no such purchase")"
                )
            case .cancel:
                guard let id = record.reservationID else { continue }
                if let row = reservations[id], row.status == .cancelled { continue }
                lost.append(
                    "user \(record.user) was told reservation \(id) on drop \(record.drop) was cancelled; the database has it \(reservations[id].map { $0.status.rawValue } ?? "missing")"
                )
            }
        }
        let lostWrites = lost.count
        // Rows nobody was told of, by the key whose indeterminate requests may explain them.
        var untold: [Key: [(created: Int64, row: String)]] = [:]
        for purchase in rows.purchases where !toldPurchases.contains(purchase.id) {
            untold[Key(drop: purchase.drop, user: purchase.user, operation: .purchase), default: []].append(
                (
                    purchase.createdMicroseconds,
                    "purchase \(purchase.id) (user \(purchase.user), drop \(purchase.drop), reservation \(purchase.reservationID))"
                ))
        }
        for reservation in rows.reservations where !toldReservations.contains(reservation.id) {
            untold[Key(drop: reservation.drop, user: reservation.user, operation: .reserve), default: []].append(
                (
                    reservation.createdMicroseconds,
                    "reservation \(reservation.id) (user \(reservation.user), drop \(reservation.drop))"
                ))
        }
        var unexplained: [String] = []
        var explained = 0
        let clock = CheckClock(zeroMicroseconds: zero)
        // Keys by their first row, then by id, so the counterexamples read the same every run.
        let ordered = untold.mapValues { $0.sorted { $0.created < $1.created } }.sorted {
            ($0.value[0].created, $0.key.drop, $0.key.user, $0.key.operation.rawValue)
                < ($1.value[0].created, $1.key.drop, $1.key.user, $1.key.operation.rawValue)
        }
        for (key, written) in ordered {
            // Rows in the order written, each taken by any request sent before it that no
            // earlier row took (all such requests serve later rows as well).
            let sends = (indeterminate[key] ?? []).sorted()
            var next = 0
            var available = 0
            for (created, row) in written {
                while next < sends.count, sends[next] - toleranceMicroseconds <= created {
                    available += 1
                    next += 1
                }
                if available > 0 {
                    available -= 1
                    explained += 1
                } else if sends.isEmpty {
                    unexplained.append(
                        "\(row) was never acknowledged and no \(key.operation.rawValue) of that user failed")
                } else {
                    unexplained.append(
                        "\(row), written at \(clock.describe(created)), was never acknowledged; the user's \(sends.count) indeterminate \(key.operation.rawValue)s (the first sent at \(clock.describe(sends[0]))) explain one row each, written after they were sent"
                    )
                }
            }
        }
        let result = InvariantResult.verdict(
            5, InvariantName.acknowledgedWritesDurable, violations: lost + unexplained,
            ok:
                "every acknowledged write is in the database; every row was acknowledged (\(explained) explained by indeterminate requests)",
            broken: "acknowledged writes missing or rows nobody was told of")
        return (result, lostWrites)
    }

    /// Invariant 6: no "sold out" while a unit was free, and a drop whose buyers were still
    /// trying when the run stopped had no unit left free since it last turned one away. An
    /// answer is judged against every instant its request could have taken effect (between
    /// its send and its answer, widened by the clock tolerance), with every unit released at
    /// the latest instant it can have been: a cancel when its batch's first caller heard back
    /// (`BatchAnswers`), an expired hold the purchase grace past its `expires_at` however late
    /// it was swept (an engine that sweeps late cannot make its own "sold out" answers look
    /// justified; such a hold is named).
    static func noUndersell(
        _ rows: CheckedRows, _ history: ClientHistory, answers: BatchAnswers,
        toleranceMicroseconds: Int64
    ) -> InvariantResult {
        let byDrop = Dictionary(grouping: rows.reservations, by: \.drop)
        let totals = Dictionary(rows.drops.map { ($0.id, $0.totalStock) }, uniquingKeysWith: { first, _ in first })
        let latest = byDrop.mapValues { reservations in
            HeldUnitsTimeline(reservations.map { latestRelease($0, answers: answers) })
        }
        let stored = byDrop.mapValues { HeldUnitsTimeline($0.map(TimelineCheck.storeRow)) }
        let empty = HeldUnitsTimeline([])
        let zero = history.startedAtEpochMicroseconds
        let clock = CheckClock(zeroMicroseconds: zero)
        var violations: [String] = []
        var soldOutAnswers = 0
        var lastTurnAway: [DropID: Int64] = [:]
        var lastAnswer: [DropID: Int64] = [:]
        for record in history.records {
            lastAnswer[record.drop] = max(lastAnswer[record.drop] ?? 0, record.answeredMicroseconds)
            // Only a sold_out turns a buyer away for stock; a shed one (overloaded) was refused
            // for the target's load and says nothing of it.
            guard record.result == .rejected(.soldOut) else { continue }
            lastTurnAway[record.drop] = max(lastTurnAway[record.drop] ?? 0, record.answeredMicroseconds)
            guard let total = totals[record.drop] else { continue }
            soldOutAnswers += 1
            let from = zero + record.sentMicroseconds - toleranceMicroseconds
            let to = zero + record.answeredMicroseconds + toleranceMicroseconds
            let most = (latest[record.drop] ?? empty).mostTaken(from: from, to: to)
            guard most < total else { continue }
            var violation =
                "user \(record.user) was told sold_out on drop \(record.drop) at "
                + "\(clock.describe(zero + record.answeredMicroseconds)) while at most \(most) of \(total) units were held or sold"
            // Naming the late sweep costs a scan of the drop's holds: only for the examples shown.
            if violations.count < CheckerLimits.counterexamples,
                (stored[record.drop] ?? empty).mostTaken(from: from, to: to) >= total
            {
                violation += lateSweeps(
                    byDrop[record.drop] ?? [], from: from, to: to, tolerance: toleranceMicroseconds, clock: clock)
            }
            violations.append(violation)
        }
        for (drop, cut) in history.cutOff.sorted(by: { $0.key < $1.key }) where cut.users > 0 {
            guard let total = totals[drop] else { continue }
            let since = zero + min(lastTurnAway[drop] ?? cut.atMicroseconds, cut.atMicroseconds) - toleranceMicroseconds
            // Until the drop's last answer, not the stop: requests sent before the stop and
            // still queued in the engine are buyers too, and take the free units after it
            // (1,000,000 buyers on two cores left the last batches answering 200 ms past it).
            let until = zero + max(cut.atMicroseconds, lastAnswer[drop] ?? 0) + toleranceMicroseconds
            let most = (latest[drop] ?? empty).mostTaken(from: since, to: until)
            if most < total {
                violations.append(
                    "drop \(drop): \(cut.users) buyers were still trying when the run stopped at "
                        + "\(clock.describe(zero + cut.atMicroseconds)), yet \(total - most) of \(total) units stayed free "
                        + "from its last turn-away (\(clock.describe(since))) to its last answer (\(clock.describe(until)))"
                )
            }
        }
        return .verdict(
            6, InvariantName.noUndersell, violations: violations,
            ok: "all \(soldOutAnswers) sold_out answers matched a moment with every unit held or sold",
            broken: "sold_out answers or stopped buyers while units were free")
    }

    /// A hold's unit for invariant 6: taken from `created_at`, given back at the latest
    /// instant the release can have taken effect. An expired hold gives it back at the latest
    /// the purchase grace past its `expires_at` (until then it may wait for a purchase asked in
    /// time, migration 9); one swept within the grace (its user's purchase was asked late) when
    /// that batch was first answered or the next batch read its clock, as a cancel, since until
    /// then the drop's memory still counted it held.
    static func latestRelease(_ reservation: CheckedRows.ReservationRow, answers: BatchAnswers) -> HeldUnitsTimeline.Row
    {
        let released: Int64? =
            switch reservation.status {
            case .cancelled:
                reservation.endedMicroseconds.flatMap { answers.latestEffect(drop: reservation.drop, stampedAt: $0) }
            case .expired:
                min(
                    reservation.endedMicroseconds.flatMap {
                        answers.latestEffect(drop: reservation.drop, stampedAt: $0)
                    }
                        ?? .max,
                    reservation.expiresMicroseconds + graceMicroseconds(of: reservation))
            case .purchased, .active: nil
            }
        return HeldUnitsTimeline.Row(
            createdMicroseconds: reservation.createdMicroseconds, releasedMicroseconds: released)
    }

    /// The expired holds that were past their deadline and the purchase grace (by more than
    /// the tolerance) but not yet swept during [from, to]: they explain a "sold out" only to an
    /// engine that sweeps late.
    static func lateSweeps(
        _ reservations: [CheckedRows.ReservationRow], from: Int64, to: Int64, tolerance: Int64, clock: CheckClock
    ) -> String {
        let late = reservations.filter { reservation in
            guard reservation.status == .expired, let ended = reservation.endedMicroseconds else { return false }
            let due = reservation.expiresMicroseconds + graceMicroseconds(of: reservation)
            return ended - due > tolerance && due + tolerance < to && ended > from
        }
        guard !late.isEmpty else { return "" }
        let named = late.prefix(3).map { reservation in
            "reservation \(reservation.id) (user \(reservation.user)) expired at \(clock.describe(reservation.expiresMicroseconds)) "
                + "but was swept only at \(clock.describe(reservation.endedMicroseconds ?? 0))"
        }
        return "; swept late: " + named.joined(separator: "; ") + (late.count > 3 ? " and \(late.count - 3) more" : "")
    }
}

extension ClientHistoryCheck {
    /// How long past `expires_at` an unbought hold may keep its unit (`Defaults`, at most half
    /// its TTL).
    static func graceMicroseconds(of reservation: CheckedRows.ReservationRow) -> Int64 {
        Reservation.graceMicroseconds(
            createdMicroseconds: reservation.createdMicroseconds, expiresMicroseconds: reservation.expiresMicroseconds)
    }

    private struct PurchaseKey: Hashable {
        var drop: DropID
        var user: UserID
    }

    /// Invariant 2, with the history: a purchase's `asked_at` is no earlier than its user sent
    /// a purchase of that drop (less the clock tolerance). A server that dated an ask before
    /// the buyer asked could make a late purchase look asked in time.
    static func purchasesAskedAfterSent(
        _ rows: CheckedRows, _ history: ClientHistory, toleranceMicroseconds: Int64
    ) -> [String] {
        let zero = history.startedAtEpochMicroseconds
        var firstSent: [PurchaseKey: Int64] = [:]
        for record in history.records where record.operation == .purchase {
            let key = PurchaseKey(drop: record.drop, user: record.user)
            firstSent[key] = min(firstSent[key] ?? .max, zero + record.sentMicroseconds)
        }
        let clock = CheckClock(zeroMicroseconds: zero)
        return rows.purchases.compactMap { purchase in
            guard let asked = purchase.askedMicroseconds,
                let sent = firstSent[PurchaseKey(drop: purchase.drop, user: purchase.user)],
                asked < sent - toleranceMicroseconds
            else { return nil }
            return "purchase \(purchase.id) (user \(purchase.user), drop \(purchase.drop)) was asked at "
                + "\(clock.describe(asked)), before the user first sent a purchase of the drop "
                + "(\(clock.describe(sent)))"
        }
    }
}
