import AMQP
import Foundation
import Hummingbird
import Postgres
import SchedulerCore
import SchedulerStore

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
                try await pool.ping()
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
        let (answers, input) = AsyncStream.makeStream(of: String?.self)
        let checking = Task { input.yield(await check()) }
        let timer = Task {
            try? await Task.sleep(for: .seconds(seconds))
            input.yield("no answer within \(seconds) seconds")
        }
        var first = answers.makeAsyncIterator()
        let answer = await first.next() ?? "no answer"
        checking.cancel()
        timer.cancel()
        input.finish()
        return answer
    }
}
