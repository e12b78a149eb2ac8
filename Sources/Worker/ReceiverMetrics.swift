import Metrics

/// Receivers' metrics: counts by state and reason, never a host label (tenants choose
/// hosts; `scheduler-ctl receivers` names them).
enum ReceiverMetrics {
    static func record(states: [Receiver.Breaker: Int], waiting: Int) {
        for (state, count) in states {
            Gauge(label: "scheduler_receiver_state", dimensions: [("state", state.rawValue)]).record(count)
        }
        Gauge(label: "scheduler_receiver_waiting_jobs").record(waiting)
    }

    static func transition(to state: Receiver.Breaker) {
        Counter(label: "scheduler_receiver_transitions_total", dimensions: [("to", state.rawValue)]).increment()
    }

    static func parked(_ reason: Receiver.ParkReason) {
        Counter(label: "scheduler_jobs_parked_total", dimensions: [("reason", reason.rawValue)]).increment()
    }
}
