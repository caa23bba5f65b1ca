// Every family /metrics exposes, stated once: its name (units in the name, counters ending in
// `_total`), its type and its HELP text. ServerMetrics makes each series through these, so no
// family goes out without HELP and TYPE, and `promtool check metrics` has nothing to say
// (tested in MetricsTests).
import Prometheus

struct MetricFamily: Sendable {
    enum Kind: Sendable { case counter, gauge, histogram }

    let name: String
    let kind: Kind
    let help: String

    var descriptor: MetricNameDescriptor { MetricNameDescriptor(metricName: name, unitName: "", helpText: help) }

    // MARK: - HTTP

    static let httpRequests = MetricFamily(
        "stockdrop_http_requests_total", .counter,
        "HTTP requests answered, by route template, method and status code.")
    static let httpRequestDuration = MetricFamily(
        "stockdrop_http_request_duration_seconds", .histogram,
        "Time from reading an HTTP request to writing its answer, by route template and method.")
    static let httpRequestsShed = MetricFamily(
        "stockdrop_http_requests_shed_total", .counter,
        "Reserves refused 503 overloaded at the event loop before any work (nothing applied).")
    static let httpRequestsInFlight = MetricFamily(
        "stockdrop_http_requests_in_flight", .gauge,
        "HTTP requests being worked on, at the overload monitor's last sample.")
    static let httpInFlightBound = MetricFamily(
        "stockdrop_http_in_flight_bound", .gauge,
        "Requests in flight past which a new reserve is shed: answers per second times the latency target.")
    static let eventLoopLag = MetricFamily(
        "stockdrop_event_loop_lag_seconds", .gauge,
        "The event loops' worst lateness in the overload monitor's last sample.")

    // MARK: - Engine and store

    static let batchClaims = MetricFamily(
        "stockdrop_batch_claims", .histogram, "Claims committed per group-commit batch.")
    static let batchCommitDuration = MetricFamily(
        "stockdrop_batch_commit_duration_seconds", .histogram,
        "Time one group-commit batch's transaction took in the store.")
    static let batchFailures = MetricFamily(
        "stockdrop_batch_failures_total", .counter, "Group-commit batches whose transaction failed.")
    static let queuedClaims = MetricFamily(
        "stockdrop_queued_claims", .gauge, "Claims waiting for a batch, over every drop this instance decides.")
    static let activeReservations = MetricFamily(
        "stockdrop_active_reservations", .gauge, "ACTIVE holds over every drop, as the database counts them.")
    static let unitsSold = MetricFamily(
        "stockdrop_units_sold", .gauge, "Units sold over every drop, as the database counts them.")

    // MARK: - Cluster

    static let ownedDrops = MetricFamily(
        "stockdrop_owned_drops", .gauge, "Drops whose lease this instance holds.")
    static let leaseTakeovers = MetricFamily(
        "stockdrop_lease_takeovers_total", .counter, "Drop leases this instance took from another owner.")
    static let fencedBatches = MetricFamily(
        "stockdrop_fenced_batches_total", .counter,
        "Batches refused by the database because this instance's lease epoch was no longer current.")
    static let leasesLost = MetricFamily(
        "stockdrop_leases_lost_total", .counter, "Drop leases this instance lost.")
    static let forwardedClaims = MetricFamily(
        "stockdrop_forwarded_claims_total", .counter,
        "Claims sent on to their drop's owner, by result: answered, unreachable, unknown, refused.")
    static let dropsHandedBack = MetricFamily(
        "stockdrop_drops_handed_back_total", .counter,
        "Drops this owner handed to the instance their claims kept coming from.")

    // MARK: - Live feed and log

    static let liveSocketEvents = MetricFamily(
        "stockdrop_live_sockets_total", .counter,
        "Live WebSocket events by kind: opened, closed, refused_user_limit, refused_instance_full, rate_limited, token_expired."
    )
    static let liveSockets = MetricFamily(
        "stockdrop_live_sockets", .gauge, "Live WebSocket subscribers connected now.")
    static let liveFramesDropped = MetricFamily(
        "stockdrop_live_frames_dropped_total", .counter,
        "Live feed frames a slow socket's full outbox dropped, and events the delivery queue dropped.")
    static let relayEventsDropped = MetricFamily(
        "stockdrop_relay_events_dropped_total", .counter,
        "Stock events this instance could not publish to Redis (queue full, or a failed publish).")
    static let logLinesWritten = MetricFamily(
        "stockdrop_log_lines_written_total", .counter, "Log lines handed to the log's descriptor.")
    static let logLinesDropped = MetricFamily(
        "stockdrop_log_lines_dropped_total", .counter,
        "Success log lines dropped because the log buffer was full (error lines never are).")

    // MARK: - Process

    static let processCPU = MetricFamily(
        "process_cpu_seconds_total", .counter, "User and system CPU time this process has spent, in seconds.")
    static let processResidentMemory = MetricFamily(
        "process_resident_memory_bytes", .gauge, "This process's resident memory, in bytes.")

    static let all: [MetricFamily] = [
        httpRequests, httpRequestDuration, httpRequestsShed, httpRequestsInFlight, httpInFlightBound, eventLoopLag,
        batchClaims, batchCommitDuration, batchFailures, queuedClaims, activeReservations, unitsSold, ownedDrops,
        leaseTakeovers, fencedBatches, leasesLost, forwardedClaims, dropsHandedBack, liveSocketEvents, liveSockets,
        liveFramesDropped, relayEventsDropped, logLinesWritten, logLinesDropped, processCPU, processResidentMemory,
    ]

    private init(_ name: String, _ kind: Kind, _ help: String) {
        self.name = name
        self.kind = kind
        self.help = help
    }
}
