import AMQP
import Dispatch
import Foundation
import Logging
import SchedulerCore
import SchedulerStore
import Synchronization

/// Moves dead letters back to `scheduler.deliveries` with fresh attempts. A message leaves
/// the dead-letter queue only after its republish is confirmed, so a crash mid-way loses
/// nothing (at worst a job is both re-driven and still listed, and runs twice with the
/// same delivery id).
public struct DeadLetterRedriver: Sendable {
    let brokerURL: String
    let policy: RetryPolicy
    let store: DeliveryStore
    let logger: Logger

    public init(brokerURL: String, policy: RetryPolicy, store: DeliveryStore, logger: Logger) {
        self.brokerURL = brokerURL
        self.policy = policy
        self.store = store
        self.logger = logger
    }

    /// Re-drives every dead letter `matches` accepts and returns their message ids (the
    /// delivery ids). The rest stay in the queue. At most `rate` messages a second when
    /// given; `progress` is called after each message moved.
    public func redrive(
        rate: Double? = nil, progress: @escaping @Sendable (Int) -> Void = { _ in },
        where matches: @escaping @Sendable (AMQPDelivery) -> Bool = { _ in true }
    ) async throws -> [String] {
        let store = store
        return try await walk(matches: matches) { connection, message, getChannel in
            if let uuid = message.messageID.flatMap(UUID.init(uuidString:)) {
                // The record first: a worker must find it queued when the job arrives.
                try Self.blocking { try await store.requeue([uuid]) }
            }
            var headers = message.headers.filter { !$0.key.hasPrefix("x-") }
            headers[DeliveryHeaders.attempt] = .int(1)
            let tag = try connection.publish(
                AMQPOutgoingMessage(
                    exchange: DeliveryTopology.exchange, routingKey: message.routingKey, body: message.body,
                    messageID: message.messageID, headers: headers),
                channel: Self.publishChannel)
            try connection.waitForConfirms(upTo: tag, channel: Self.publishChannel)
            // Only now does it leave the dead-letter queue.
            try connection.ack(message.deliveryTag, channel: getChannel)
        } after: { count in
            progress(count)
            if let rate, rate > 0 { Thread.sleep(forTimeInterval: 1 / rate) }
        }
    }

    /// Drops every dead letter `matches` accepts, marks their records purged, and returns
    /// their message ids.
    public func purge(
        progress: @escaping @Sendable (Int) -> Void = { _ in }, where matches: @escaping @Sendable (AMQPDelivery) -> Bool
    ) async throws -> [String] {
        let store = store
        let purged = try await walk(matches: matches) { connection, message, getChannel in
            try connection.ack(message.deliveryTag, channel: getChannel)
        } after: {
            progress($0)
        }
        try await store.markPurged(purged.compactMap(UUID.init(uuidString:)))
        return purged
    }

    /// The dead letters, read and handed back (for `show`): at most `limit`.
    public func browse(limit: Int = 100_000) async throws -> [AMQPDelivery] {
        let found = Mutex<[AMQPDelivery]>([])
        _ = try await walk(matches: { message in
            found.withLock { $0.count < limit ? $0.append(message) : () }
            return false
        }) { _, _, _ in
        } after: { _ in
        }
        return found.withLock { $0 }
    }

    static let getChannel: UInt16 = 1
    static let publishChannel: UInt16 = 2

    /// Takes the dead letters there are now, one at a time, on a connection and thread of
    /// its own; calls `act` for each match (which must ack it) and hands the others back at
    /// the end.
    private func walk(
        matches: @escaping @Sendable (AMQPDelivery) -> Bool,
        act: @escaping @Sendable (AMQPConnection, AMQPDelivery, UInt16) throws -> Void,
        after: @escaping @Sendable (Int) -> Void
    ) async throws -> [String] {
        let queue = DispatchQueue(label: "dead-letter-walk")
        let topology = DeliveryTopology.make(policy)
        let brokerURL = brokerURL
        return try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(
                    with: Result {
                        let connection = try AMQPConnection(url: brokerURL, heartbeat: 0)
                        defer { connection.close() }
                        try connection.openChannel(Self.getChannel)
                        try connection.openChannel(Self.publishChannel)
                        try connection.declare(topology, channel: Self.getChannel)
                        try connection.enableConfirms(channel: Self.publishChannel)
                        // Only what is there now: a re-driven job that fails again joins the queue's
                        // tail and must not be taken a second time in this run.
                        let depth = try connection.declareQueue(DeliveryTopology.deadQueue, passive: true, channel: Self.getChannel)
                            .messages
                        var done: [String] = []
                        var skipped: [UInt64] = []
                        defer { for tag in skipped { try? connection.nack(tag, requeue: true, channel: Self.getChannel) } }
                        var taken = 0
                        while taken < depth, let message = try connection.get(queue: DeliveryTopology.deadQueue, channel: Self.getChannel) {
                            taken += 1
                            guard matches(message) else {
                                skipped.append(message.deliveryTag)
                                continue
                            }
                            try act(connection, message, Self.getChannel)
                            done.append(message.messageID ?? "")
                            after(done.count)
                        }
                        return done
                    })
            }
        }
    }

    /// Runs async database work from the redriver's own thread (never the cooperative pool's).
    static func blocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
        let semaphore = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        Task {
            do {
                box.result = .success(try await work())
            } catch {
                box.result = .failure(error)
            }
            semaphore.signal()
        }
        semaphore.wait()
        // Set before the signal on every path of the task above.
        guard let result = box.result else { throw AMQPError(kind: .connection, message: "database work ended without a result") }
        return try result.get()
    }
}

/// Carries a result from a task to the thread waiting on it (written before the signal,
/// read after it).
final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}
