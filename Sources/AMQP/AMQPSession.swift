import Dispatch
import Foundation

/// One broker connection whose blocking librabbitmq calls all run on a serial queue that
/// this box owns: its operations are `async`, so a caller on Swift's cooperative pool (a
/// request handler, a command) never blocks it and never hops threads itself.
///
/// `@unchecked Sendable` is safe because the connection is touched only on `queue`.
public final class AMQPSession: @unchecked Sendable {
    private let queue: DispatchQueue
    private let connection: AMQPConnection

    private init(queue: DispatchQueue, connection: AMQPConnection) {
        self.queue = queue
        self.connection = connection
    }

    /// Connects and logs in (`timeout` seconds for the connection, `heartbeat` 0 for none).
    public static func open(url: String, heartbeat: Int = 0, timeout: Double = 5) async throws -> AMQPSession {
        let queue = DispatchQueue(label: "amqp.session")
        let connection: AMQPConnection = try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try AMQPConnection(url: url, heartbeat: heartbeat, timeout: timeout) }) }
        }
        return AMQPSession(queue: queue, connection: connection)
    }

    /// Runs blocking work on the session's queue.
    private func run<T: Sendable>(_ work: @escaping @Sendable (AMQPConnection) throws -> T) async throws -> T {
        let connection = connection
        return try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work(connection) }) }
        }
    }

    /// Closes the connection politely (once any operation in progress is done).
    public func close() async {
        _ = try? await run { $0.close() }
    }

    public func openChannel(_ channel: UInt16) async throws {
        try await run { try $0.openChannel(channel) }
    }

    public func declare(_ topology: AMQPTopology, channel: UInt16) async throws {
        try await run { try $0.declare(topology, channel: channel) }
    }

    /// Declares a durable queue (or only checks it when `passive`) and returns its counts.
    public func declareQueue(_ name: String, passive: Bool = false, channel: UInt16) async throws -> AMQPQueueCounts {
        try await run { try $0.declareQueue(name, passive: passive, channel: channel) }
    }

    public func enableConfirms(channel: UInt16) async throws {
        try await run { try $0.enableConfirms(channel: channel) }
    }

    /// Fetches one message with basic.get, or nil when the queue is empty.
    public func get(queue name: String, channel: UInt16) async throws -> AMQPDelivery? {
        try await run { try $0.get(queue: name, channel: channel) }
    }

    /// Publishes on a confirm channel and returns once the broker confirmed it.
    public func publishConfirmed(_ message: AMQPOutgoingMessage, channel: UInt16) async throws {
        try await run { connection in
            let tag = try connection.publish(message, channel: channel)
            try connection.waitForConfirms(upTo: tag, channel: channel)
        }
    }

    public func ack(_ deliveryTag: UInt64, channel: UInt16) async throws {
        try await run { try $0.ack(deliveryTag, channel: channel) }
    }

    public func nack(_ deliveryTag: UInt64, requeue: Bool, channel: UInt16) async throws {
        try await run { try $0.nack(deliveryTag, requeue: requeue, channel: channel) }
    }
}
