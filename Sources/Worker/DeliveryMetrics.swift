import Metrics
import SchedulerCore

/// The worker's metrics (low-cardinality labels only).
enum DeliveryMetrics {
    static let lateness = Recorder(label: "scheduler_delivery_lateness_seconds", aggregate: true)
    static let duration = Recorder(label: "scheduler_delivery_duration_seconds", aggregate: true)
    static let attempts = Counter(label: "scheduler_delivery_attempts_total")

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
        Counter(label: "scheduler_deliveries_total", dimensions: [("outcome", outcome), ("status_class", statusClass)]).increment()
    }

    static func skipped(_ outcome: String) {
        Counter(label: "scheduler_deliveries_total", dimensions: [("outcome", outcome), ("status_class", "none")]).increment()
    }
}
