import AMQP
import Foundation
import Hummingbird
import Postgres
import SchedulerCore
import Synchronization

/// `GET /api/health/`: 200 when PostgreSQL answers a query and RabbitMQ accepts a login,
/// else 503 with `"up": false` and what failed.
struct HealthController: Sendable {
    let pool: PostgresPool
    let brokerURL: String

    func addRoutes(to group: RouterGroup<SchedulerRequestContext>) {
        group.resource("health/", [.get: health])
    }

    @Sendable func health(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        async let database = checkDatabase()
        async let broker = checkBroker()
        let (databaseError, brokerError) = await (database, broker)
        let up = databaseError == nil && brokerError == nil
        if !up {
            context.logger.warning(
                "health check failed", metadata: ["database": "\(databaseError ?? "ok")", "broker": "\(brokerError ?? "ok")"])
        }
        let result: JSONValue = .object([
            "database": .string(databaseError.map { "Inaccessible: \($0)" } ?? "Accessible"),
            "broker": .string(brokerError.map { "Inaccessible: \($0)" } ?? "Accessible"),
            "version": .string(SchedulerVersion.current),
        ])
        return JSONResponse.make(status: up ? .ok : .serviceUnavailable, body: .object(["up": .bool(up), "result": result]))
    }

    /// nil when PostgreSQL answered within 3 seconds, else why not.
    private func checkDatabase() async -> String? {
        await withTimeout(seconds: 3) {
            do {
                try await pool.query("SELECT 1")
                return nil
            } catch let error as PostgresError {
                return error.message.trimmingCharacters(in: .whitespacesAndNewlines)
            } catch {
                return "\(error)"
            }
        }
    }

    /// nil when the broker accepted an AMQP login within 2 seconds, else why not.
    private func checkBroker() async -> String? {
        let url = brokerURL
        return await withTimeout(seconds: 3) {
            do {
                let session = try await AMQPSession.open(url: url, timeout: 2)
                await session.close()
                return nil
            } catch let error as AMQPError {
                return error.message
            } catch {
                return "\(error)"
            }
        }
    }

    /// The check's answer, or a timeout message if it takes longer; a check stuck in a
    /// blocking call is left to finish on its own instead of holding the response.
    private func withTimeout(seconds: Int, _ check: @escaping @Sendable () async -> String?) async -> String? {
        let once = Mutex<CheckedContinuation<String?, Never>?>(nil)
        return await withCheckedContinuation { continuation in
            once.withLock { $0 = continuation }
            let resume: @Sendable (String?) -> Void = { answer in
                once.withLock { pending in
                    pending?.resume(returning: answer)
                    pending = nil
                }
            }
            let checking = Task { resume(await check()) }
            Task {
                try? await Task.sleep(for: .seconds(seconds))
                resume("no answer within \(seconds) seconds")
                checking.cancel()
            }
        }
    }
}

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
            let row = try await pool.query("SELECT count(*) AS total, count(*) FILTER (WHERE enabled) AS enabled FROM schedules").first
            pusher.push([
                ("schedules.total.last", Int(row?["total"] ?? "") ?? 0), ("schedules.enabled.last", Int(row?["enabled"] ?? "") ?? 0),
            ])
        }
        return JSONResponse.make(status: .created, body: .object(["scheduled_metrics_initiated": .bool(true)]))
    }
}
