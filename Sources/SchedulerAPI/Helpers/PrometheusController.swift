import Hummingbird
import Metrics
import Telemetry

/// `GET /metrics` (no token): the Prometheus text of this process, with the schedule counts
/// and queue depths of the last reading (a few seconds old at most); `/livez` and `/readyz`.
struct PrometheusController: Sendable {
    let status: OperationsStatus

    func addRoutes(to router: Router<SchedulerRequestContext>) {
        router.get("metrics") { _, _ in
            await refresh()
            return Telemetry.response()
        }
        // Probes for orchestrators (no token): live while the process answers; ready while
        // PostgreSQL and RabbitMQ answered at the last reading (a few seconds old at most).
        router.get("livez") { _, _ in Readiness.live() }
        router.get("readyz") { _, _ in
            let reading = await status.current()
            let checks = [("broker", reading.broker), ("database", reading.database)].map { name, check in
                (name: name, failure: check == .up ? nil : Self.failure(check))
            }
            return Readiness.response(ready: checks.allSatisfy { $0.failure == nil }, checks: checks)
        }
    }

    private static func failure(_ check: OperationsStatus.Check) -> String? {
        if case .down(let reason, _) = check { return reason }
        return nil
    }

    private func refresh() async {
        let reading = await status.current()
        if let (total, enabled) = reading.schedules {
            Gauge(label: "scheduler_schedules", dimensions: [("state", "enabled")]).record(enabled)
            Gauge(label: "scheduler_schedules", dimensions: [("state", "disabled")]).record(total - enabled)
        }
        for (name, queue) in reading.queues {
            guard let queue else { continue }
            Gauge(label: "scheduler_queue_ready_messages", dimensions: [("queue", name)]).record(queue.messages)
            Gauge(label: "scheduler_queue_consumers", dimensions: [("queue", name)]).record(queue.consumers)
        }
    }
}
