import Hummingbird
import Postgres
import SchedulerCore
import SchedulerStore

/// `GET /api/metrics/` lists the metric keys; `POST /api/metrics/` starts a push of the
/// current totals to the Go Metrics API (when `METRICS_URL` is set).
struct MetricsController: Sendable {
    let pool: PostgresPool
    let pusher: MetricsPusher

    func addRoutes(to group: RouterGroup<SchedulerRequestContext>) {
        group.resource("metrics/", [.get: list, .post: fire])
    }

    @Sendable func list(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        JSONResponse.make(body: .object(["metrics_available": .array(MetricKeys.available.map(JSONValue.string))]))
    }

    @Sendable func fire(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        if pusher.isEnabled {
            let counts = try await ScheduleStore(pool: pool).counts()
            pusher.push([("schedules.total.last", counts.total), ("schedules.enabled.last", counts.enabled)])
        }
        return JSONResponse.make(status: .created, body: .object(["scheduled_metrics_initiated": .bool(true)]))
    }
}
