import DeliveryQueues
import Hummingbird
import Metrics
import Postgres
import SchedulerCore
import SchedulerStore
import Telemetry

/// `GET /metrics` (no token): the Prometheus text of this process, with the schedule counts
/// and queue depths read at scrape time.
struct PrometheusController: Sendable {
    let pool: PostgresPool
    let brokerURL: String
    let policy: RetryPolicy

    func addRoutes(to router: Router<SchedulerRequestContext>) {
        router.get("metrics") { _, _ in
            await refresh()
            return Telemetry.response()
        }
    }

    private func refresh() async {
        if let (total, enabled) = try? await ScheduleStore(pool: pool).counts() {
            Gauge(label: "scheduler_schedules", dimensions: [("state", "enabled")]).record(enabled)
            Gauge(label: "scheduler_schedules", dimensions: [("state", "disabled")]).record(total - enabled)
        }
        let counts = (try? await QueueDepths.read(brokerURL: brokerURL, policy: policy, timeout: 2)) ?? []
        for (name, queue) in counts {
            guard let queue else { continue }
            Gauge(label: "scheduler_queue_ready_messages", dimensions: [("queue", name)]).record(queue.messages)
            Gauge(label: "scheduler_queue_consumers", dimensions: [("queue", name)]).record(queue.consumers)
        }
    }
}
