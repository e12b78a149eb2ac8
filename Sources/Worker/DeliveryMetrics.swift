import Metrics
import SchedulerCore
import Synchronization

/// The worker's metrics (low-cardinality labels only).
enum DeliveryMetrics {
    static let lateness = Recorder(label: "scheduler_delivery_lateness_seconds", aggregate: true)
    static let duration = Recorder(label: "scheduler_delivery_duration_seconds", aggregate: true)
    static let attempts = Counter(label: "scheduler_delivery_attempts_total")
    static let readAhead = Counter(label: "scheduler_targets_read_ahead_total")

    static func attempt(decision: DeliveryDecision, status: Int?, seconds: Double) {
        attempts.increment()
        duration.record(seconds)
        let outcome: String
        switch decision {
        case .delivered: outcome = "delivered"
        case .retry: outcome = "retry"
        case .dead: outcome = "dead"
        }
        let statusClass = status.map { "\($0 / 100)xx" } ?? "none"
        deliveries(outcome: outcome, statusClass: statusClass).increment()
    }

    /// `scheduler_schedules_paused_total{reason}`: schedules paused because their failures
    /// would pile up (`failures`, `dead_letters`).
    static func paused(_ reason: String) {
        Counter(label: "scheduler_schedules_paused_total", dimensions: [("reason", reason)]).increment()
    }

    static func skipped(_ outcome: String) {
        deliveries(outcome: outcome, statusClass: "none").increment()
    }

    /// `scheduler_deliveries_total` by outcome and status class, each made once: making a
    /// counter looks it up in the registry under its lock, which cost 8% of the worker's
    /// own CPU at a due instant of 1,000 POSTs (measured with perf). The pairs are few
    /// (eight outcomes, a status class by hundreds); past `keptCounters` of them (a receiver
    /// answering with odd codes) a counter is made each time, as before, and not kept.
    private static let byLabels = Mutex<[String: Counter]>([:])
    static let keptCounters = 100

    private static func deliveries(outcome: String, statusClass: String) -> Counter {
        byLabels.withLock { counters in
            let key = outcome + " " + statusClass
            if let counter = counters[key] { return counter }
            let counter = Counter(label: "scheduler_deliveries_total", dimensions: [("outcome", outcome), ("status_class", statusClass)])
            if counters.count < keptCounters { counters[key] = counter }
            return counter
        }
    }
}
