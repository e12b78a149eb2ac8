import Dispatch
import Logging

/// Publishes batches with publisher confirms on a connection of its own, opened on first
/// use (declaring the topology) and opened again after a failure.
///
/// `@unchecked Sendable` is safe because the connection is only touched on `queue`, a
/// serial queue: the blocking librabbitmq calls never run on Swift's cooperative pool.
public final class AMQPPublisher: @unchecked Sendable {
    private let url: String
    private let topology: AMQPTopology?
    private let logger: Logger
    private let queue = DispatchQueue(label: "amqp.publisher")
    private var connection: AMQPConnection?
    private let channel: UInt16 = 1
    private let heartbeat: Int
    private var heartbeatTimer: (any DispatchSourceTimer)?

    /// `heartbeat` in seconds (0: none). With heartbeats, the publisher's queue wakes every
    /// half heartbeat while connected to send its own and read the broker's, so a broker
    /// that went silent (a half-open connection) is noticed within two heartbeats instead
    /// of at the next publish's confirm timeout.
    public init(url: String, topology: AMQPTopology?, logger: Logger, heartbeat: Int = 10) {
        self.url = url
        self.topology = topology
        self.logger = logger
        self.heartbeat = max(0, heartbeat)
    }

    deinit {
        // A publisher dropped without `close()` must not leave its timer firing.
        heartbeatTimer?.cancel()
    }

    /// Publishes every message and returns once the broker confirmed them all; throws if
    /// any was refused or unroutable, or the connection failed (then nothing is known to
    /// be published, and the caller publishes again later).
    public func publish(_ messages: [AMQPOutgoingMessage], timeout: Double = 30) async throws {
        guard !messages.isEmpty else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            queue.async {
                continuation.resume(with: Result { try self.publishBlocking(messages, timeout: timeout) })
            }
        }
    }

    /// Opens the connection now (declaring the topology), so start-up fails early and clearly.
    public func connect() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            queue.async { continuation.resume(with: Result { _ = try self.openIfNeeded() }) }
        }
    }

    /// Closes the connection once any publish in progress is done (without waiting for it).
    public func close() {
        queue.async {
            self.heartbeatTimer?.cancel()
            self.heartbeatTimer = nil
            self.connection?.close()
            self.connection = nil
        }
    }

    private func openIfNeeded() throws -> AMQPConnection {
        if let connection { return connection }
        let connection = try AMQPConnection.openDeclaring(url: url, heartbeat: heartbeat, channel: channel, topology: topology)
        try connection.enableConfirms(channel: channel)
        self.connection = connection
        startHeartbeats()
        logger.debug("AMQP publisher connected")
        return connection
    }

    /// On `queue`: services the idle connection every half heartbeat.
    private func startHeartbeats() {
        guard heartbeat > 0, heartbeatTimer == nil else { return }
        let timer = DispatchSource.makeTimerSource(queue: queue)
        let interval = DispatchTimeInterval.milliseconds(heartbeat * 500)
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [weak self] in
            guard let self, let connection = self.connection else { return }
            do {
                try connection.serviceIdle()
            } catch {
                self.logger.warning(
                    "AMQP publisher connection lost while idle; reconnecting on next publish", metadata: ["error": "\(error)"])
                self.connection = nil
            }
        }
        timer.resume()
        heartbeatTimer = timer
    }

    private func publishBlocking(_ messages: [AMQPOutgoingMessage], timeout: Double) throws {
        do {
            let connection = try openIfNeeded()
            var last: UInt64 = 0
            for message in messages { last = try connection.publish(message, mandatory: true, channel: channel) }
            try connection.waitForConfirms(upTo: last, channel: channel, timeout: timeout)
        } catch let error as AMQPError {
            if error.kind != .rejected {
                // Start over on a fresh connection next time.
                connection = nil
            }
            throw error
        }
    }
}
