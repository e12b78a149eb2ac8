import Foundation
import Hummingbird
import SchedulerCore

/// `GET /api/health/`: 200 when PostgreSQL answered a query and RabbitMQ a login at the
/// last reading (a few seconds old at most), else 503 with `"up": false` and what failed,
/// in words that name no host, user or query (the log has the detail).
struct HealthController: Sendable {
    let status: OperationsStatus

    func addRoutes(to group: RouterGroup<SchedulerRequestContext>) {
        group.resource("health/", [.get: health])
    }

    @Sendable func health(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let reading = await status.current()
        let up = reading.database == .up && reading.broker == .up
        let result: JSONValue = .object([
            "database": .string(Self.words(reading.database)),
            "broker": .string(Self.words(reading.broker)),
            "version": .string(SchedulerVersion.current),
        ])
        return JSONResponse.make(status: up ? .ok : .serviceUnavailable, body: .object(["up": .bool(up), "result": result]))
    }

    static func words(_ check: OperationsStatus.Check) -> String {
        switch check {
        case .up: "Accessible"
        case .down(let reason, _): "Inaccessible: \(reason)"
        }
    }
}
