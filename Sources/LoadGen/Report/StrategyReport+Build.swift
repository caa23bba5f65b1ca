// Summarising a strategy's run: HDR histograms per operation and outcome, the per-second
// timeline, thresholds evaluated against the figures.
import Engine
import Foundation

extension StrategyReport {
    init(_ run: StrategyResult, thresholds: [Threshold]) {
        let records = run.history.records
        var operations: [String: OperationStats] = [:]
        var curves: [String: [[Double]]] = [:]
        // A merge of shards brings the sum of their histograms; a single run records its own.
        let histograms = run.histograms ?? OperationHistograms(records)
        for operation in OperationKind.allCases {
            let mine = records.filter { $0.operation == operation }
            var rejected: [String: Int] = [:]
            var shed = 0
            for record in mine {
                guard case .rejected(let code) = record.result else { continue }
                if code == .overloaded { shed += 1 } else { rejected[code.rawValue, default: 0] += 1 }
            }
            let all = histograms.histogram(operation)
            let byOutcome = Dictionary(
                uniqueKeysWithValues: ["ok", "rejected", "shed", "error"].map {
                    ($0, histograms.histogram(operation, $0).percentiles)
                })
            operations[operation.rawValue] = OperationStats(
                count: mine.count, ok: mine.count { $0.result == .ok }, rejected: rejected, shed: shed,
                errors: mine.count(where: \.result.isFailure), timeouts: mine.count { $0.result == .timeout },
                latencyMilliseconds: all.percentiles, latencyByOutcomeMilliseconds: byOutcome)
            if !mine.isEmpty { curves[operation.rawValue] = all.curve }
        }
        let seconds = max(run.loadSeconds, 1e-6)
        let committed = records.count { $0.operation == .reserve && $0.result == .ok }
        let answered = records.count { !$0.result.isFailure }
        let timing = TimingFigures(run, records: records)
        let late = timing.lateSends
        let cutOff = run.history.cutOff.values.reduce(0) { $0 + $1.users }
        self.init(
            strategy: run.strategy, durationSeconds: run.loadSeconds, invariants: run.check.invariants,
            operations: operations,
            throughput: Throughput(
                committedClaimsPerSecond: Double(committed) / seconds,
                requestsPerSecond: Double(records.count) / seconds,
                answersPerSecond: Double(answered) / seconds, timeToSellOutSeconds: run.check.timeToSellOutSeconds),
            thresholds: [],
            users: UserFigures(
                planned: run.plannedUsers, arrived: run.plannedUsers - run.neverSent, droppedSends: run.neverSent,
                lateSends: late, cutOffWhileTrying: cutOff, shedAtStop: run.shedAtStop > 0 ? run.shedAtStop : nil,
                unsentAtStop: OperationKind.named(run.unsentAtStop)),
            stock: StockFigures(
                total: run.totalStock, sold: run.check.sold, unsold: run.check.unsold,
                oversold: run.check.oversold, lostWrites: run.check.lostWrites),
            timeline: Self.timeline(records, samples: run.stockSamples),
            latencyCurves: curves, database: run.databaseURL, live: run.live,
            stampToAnswerMilliseconds: run.check.stampToAnswerMilliseconds)
        if !run.faults.isEmpty { faults = FaultReport.reports(run.faults, history: records) }
        if !run.errorCauses.isEmpty { errorCauses = run.errorCauses }
        targetDown = run.targetDown
        resources = ResourceFigures(
            targetCPUMicroseconds: run.targetCPUMicroseconds,
            targetCPUMicrosecondsPerRequest: run.targetCPUMicroseconds.map {
                Double($0) / Double(max(records.count, 1))
            },
            harnessPeakResidentBytes: run.harnessPeakResidentBytes ?? ProcessUsage.now().peakResidentBytes)
        let load = run.stockSamples.filter { $0.second <= run.loadSeconds && $0.residentBytes > 0 }
        if run.loadSeconds >= 2 * LoadDefaults.warmUpSeconds,
            let warm = load.first(where: { $0.second >= LoadDefaults.warmUpSeconds }), let end = load.last
        {
            resources?.harnessResidentBytesAfterWarmUp = warm.residentBytes
            resources?.harnessResidentBytesAtEnd = end.residentBytes
            resources?.harnessResidentGrowthAfterWarmUp =
                Double(end.residentBytes - warm.residentBytes) / Double(warm.residentBytes)
        }
        self.timing = timing
        expiredPurchases = run.check.expiredPurchases
        holdsLiveAtCheck = run.check.holdsLiveAtCheck
        // The built-in rule is added only when it fails, so a scenario's list stays its own.
        let builtIn = Threshold.builtIn.evaluate(value(of: Threshold.builtIn.metric))
        self.thresholds = thresholds.map { threshold in
            var result = threshold.evaluate(value(of: threshold.metric))
            // A latency threshold is judged as the buyer felt it; when the harness itself held
            // requests back, the same percentile less that delay says whose the miss is.
            if case .latency(let percentile, let operation) = threshold.metric,
                let without = timing.operations[operation.rawValue]?.withoutHarnessDelayMilliseconds.at(percentile)
            {
                result.withoutHarnessDelay = without
                result.decidedByHarness =
                    !result.ok && timing.harnessLimited && threshold.comparison.holds(without, threshold.value)
            }
            return result
        }
        if !records.isEmpty, !builtIn.ok, !thresholds.contains(Threshold.builtIn) {
            var failed = builtIn
            failed.expression += " (built in: every request was shed or failed, so nothing was measured)"
            self.thresholds.append(failed)
        }
    }

    /// The figure a threshold's metric names.
    func value(of metric: Threshold.Metric) -> Double {
        switch metric {
        case .latency(let percentile, let operation):
            // No request of the kind: no figure (it read 0, so `p99(cancel) < 1s` passed a run
            // that never cancelled).
            guard let stats = operations[operation.rawValue], stats.count > 0 else { return .infinity }
            let latency = stats.latencyMilliseconds
            switch percentile {
            case 50: return latency.p50
            case 90: return latency.p90
            case 99: return latency.p99
            case 99.9: return latency.p999
            default: return latency.max
            }
        case .count(let count):
            switch count {
            case .oversold: return Double(stock.oversold)
            case .errors: return Double(operations.values.reduce(0) { $0 + $1.errors })
            case .timeouts: return Double(operations.values.reduce(0) { $0 + $1.timeouts })
            case .invariantsBroken: return Double(invariantsBroken)
            case .lostWrites: return Double(stock.lostWrites)
            case .lateSends: return Double(users.lateSends)
            case .droppedSends: return Double(users.droppedSends)
            case .sold: return Double(stock.sold)
            case .unsold: return Double(stock.unsold)
            case .committedClaimsPerSecond: return throughput.committedClaimsPerSecond
            case .requestsPerSecond: return throughput.requestsPerSecond
            case .answersPerSecond: return throughput.answersPerSecond
            case .timeToSellOutSeconds: return throughput.timeToSellOutSeconds ?? .infinity
            case .residentGrowth: return resources?.harnessResidentGrowthAfterWarmUp ?? .infinity
            case .shed: return Double(operations.values.reduce(0) { $0 + $1.shed })
            case .answers: return Double(operations.values.reduce(0) { $0 + $1.ok + $1.rejected.values.reduce(0, +) })
            case .expiredInTime: return Double(expiredPurchases?.sentInTime ?? 0)
            }
        }
    }

    static func timeline(_ records: [OperationRecord], samples: [StockSample]) -> [TimelinePoint] {
        let lastSecond = max(
            records.map { Int($0.answeredMicroseconds / 1_000_000) }.max() ?? 0,
            samples.map { Int($0.second) }.max() ?? 0)
        var points = (0...lastSecond).map {
            TimelinePoint(second: $0, sent: 0, ok: 0, rejected: 0, errors: 0, committedClaims: 0, availableStock: nil)
        }
        for record in records {
            points[Int(record.sentMicroseconds / 1_000_000)].sent += 1
            let second = Int(record.answeredMicroseconds / 1_000_000)
            switch record.result {
            case .ok:
                points[second].ok += 1
                if record.operation == .reserve { points[second].committedClaims += 1 }
            case .rejected: points[second].rejected += 1
            case .failed, .error, .timeout: points[second].errors += 1
            }
        }
        for sample in samples { points[min(lastSecond, Int(sample.second))].availableStock = sample.available }
        return points
    }
}
