import AMQP
import DeliveryQueues
import Foundation
import Hummingbird
import SchedulerCore
import SchedulerStore
import Synchronization

/// `/api/v1/failed-tasks/`: the caller's dead letters (an admin's: all); POST re-drives them (the same
/// code as `scheduler-ctl dead-letters redrive`).
struct DeadLetterController: Sendable {
    let store: DeliveryStore
    let redriver: DeadLetterRedriver
    let settings: APISettings
    /// One re-drive at a time per process: each walks the whole dead-letter queue, so a
    /// crowd of requests must not become a crowd of walks and broker connections.
    let redriving = Gate()

    final class Gate: Sendable {
        private let busy = Mutex(false)

        func enter() -> Bool {
            busy.withLock { busy in
                defer { busy = true }
                return !busy
            }
        }

        func leave() { busy.withLock { $0 = false } }
    }

    func addRoutes(to group: RouterGroup<SchedulerRequestContext>) {
        group.resource("v1/failed-tasks/", [.get: list, .post: redrive])
        group.resource("v1/failed-tasks/:id/", [.get: retrieve])
    }

    @Sendable func list(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let owner = try context.owner()
        return try await Pagination.response(to: request, settings: settings) {
            try await store.dead(owner: owner, limit: $0, offset: $1)
        } render: {
            $0.failedTaskJSON($1)
        }
    }

    @Sendable func retrieve(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text),
            let delivery = try await store.delivery(id: id, owner: try context.owner()), delivery.state == .dead
        else { throw APIError.notFound }
        return JSONResponse.make(body: delivery.failedTaskJSON(Links(request: request, settings: settings)))
    }

    @Sendable func redrive(_ request: Request, context: SchedulerRequestContext) async throws -> Response {
        let owner = try context.owner()
        var mine: Set<String>?
        if let owner { mine = try await store.deadIDs(owner: owner) }
        // Nothing of theirs to move: no walk, no broker connection.
        if let mine, mine.isEmpty { return JSONResponse.make(status: .created, body: .object(["requeued_failed_tasks": .bool(true)])) }
        guard redriving.enter() else {
            throw APIError(.tooManyRequests, detail: "A re-drive is already running; try again shortly.", headers: [.retryAfter: "5"])
        }
        defer { redriving.leave() }
        do {
            // A normal user re-drives their own dead letters; an admin, all of them.
            let moved: [String]
            if let mine {
                moved = try await redriver.redrive(where: { message in message.messageID.map { mine.contains($0.lowercased()) } ?? false })
            } else {
                moved = try await redriver.redrive()
            }
            context.logger.info("failed tasks re-driven", metadata: ["count": "\(moved.count)"])
        } catch let error as AMQPError {
            context.logger.error("re-drive failed", metadata: ["error": "\(error)"])
            throw APIError(.serviceUnavailable, detail: "The broker is unavailable; try again shortly.", headers: [.retryAfter: "5"])
        }
        return JSONResponse.make(status: .created, body: .object(["requeued_failed_tasks": .bool(true)]))
    }
}
