import AMQP
import Delivery
import Dispatch
import Hummingbird
import Metrics
import Postgres
import SchedulerCore
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
        if let row = try? await pool.query("SELECT count(*) FILTER (WHERE enabled) AS enabled, count(*) AS total FROM schedules").first {
            let enabled = Int(row["enabled"] ?? "") ?? 0
            let total = Int(row["total"] ?? "") ?? 0
            Gauge(label: "scheduler_schedules", dimensions: [("state", "enabled")]).record(enabled)
            Gauge(label: "scheduler_schedules", dimensions: [("state", "disabled")]).record(total - enabled)
        }
        let names = DeliveryTopology.queueNames(policy)
        let url = brokerURL
        let counts: [(String, AMQPQueueCounts)] = await withCheckedContinuation { continuation in
            // librabbitmq blocks: off the event loop.
            DispatchQueue.global().async {
                var found: [(String, AMQPQueueCounts)] = []
                if let connection = try? AMQPConnection(url: url, heartbeat: 0, timeout: 2) {
                    var channel: UInt16 = 1
                    if (try? connection.openChannel(channel)) != nil {
                        for name in names {
                            if let counts = try? connection.declareQueue(name, passive: true, channel: channel) {
                                found.append((name, counts))
                            } else {
                                channel += 1
                                if (try? connection.openChannel(channel)) == nil { break }
                            }
                        }
                    }
                    connection.close()
                }
                continuation.resume(returning: found)
            }
        }
        for (name, queue) in counts {
            Gauge(label: "scheduler_queue_ready_messages", dimensions: [("queue", name)]).record(queue.messages)
            Gauge(label: "scheduler_queue_consumers", dimensions: [("queue", name)]).record(queue.consumers)
        }
    }
}
