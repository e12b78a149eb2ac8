import AMQP
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
        return try await walk(matches: matches) { session, message, getChannel in
            if let uuid = message.messageID.flatMap(UUID.init(uuidString:)) {
                // The record first: a worker must find it queued when the job arrives.
                try await store.requeue([uuid])
            }
            var headers = message.headers.filter { !$0.key.hasPrefix("x-") }
            headers[DeliveryHeaders.attempt] = .int(1)
            try await session.publishConfirmed(
                AMQPOutgoingMessage(
                    exchange: DeliveryTopology.exchange, routingKey: message.routingKey, body: message.body,
                    messageID: message.messageID, headers: headers),
                channel: Self.publishChannel)
            // Only now does it leave the dead-letter queue.
            try await session.ack(message.deliveryTag, channel: getChannel)
        } after: { count in
            progress(count)
            if let rate, rate > 0 { try await Task.sleep(for: .milliseconds(Int(1000 / rate))) }
        }
    }

    /// Drops every dead letter `matches` accepts, marks their records purged, and returns
    /// their message ids.
    public func purge(
        progress: @escaping @Sendable (Int) -> Void = { _ in }, where matches: @escaping @Sendable (AMQPDelivery) -> Bool
    ) async throws -> [String] {
        let store = store
        let purged = try await walk(matches: matches) { session, message, getChannel in
            try await session.ack(message.deliveryTag, channel: getChannel)
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

    /// Takes the dead letters there are now, one at a time, on a session of its own; calls
    /// `act` for each match (which must ack it) and hands the others back at the end.
    private func walk(
        matches: @escaping @Sendable (AMQPDelivery) -> Bool,
        act: @escaping @Sendable (AMQPSession, AMQPDelivery, UInt16) async throws -> Void,
        after: @escaping @Sendable (Int) async throws -> Void
    ) async throws -> [String] {
        let session = try await AMQPSession.open(url: brokerURL)
        var skipped: [UInt64] = []
        do {
            try await session.openChannel(Self.getChannel)
            try await session.openChannel(Self.publishChannel)
            try await session.declare(DeliveryTopology.make(policy), channel: Self.getChannel)
            try await session.enableConfirms(channel: Self.publishChannel)
            // Only what is there now: a re-driven job that fails again joins the queue's
            // tail and must not be taken a second time in this run.
            let depth = try await session.declareQueue(DeliveryTopology.deadQueue, passive: true, channel: Self.getChannel).messages
            var done: [String] = []
            var taken = 0
            while taken < depth, let message = try await session.get(queue: DeliveryTopology.deadQueue, channel: Self.getChannel) {
                taken += 1
                guard matches(message) else {
                    skipped.append(message.deliveryTag)
                    continue
                }
                try await act(session, message, Self.getChannel)
                done.append(message.messageID ?? "")
                try await after(done.count)
            }
            for tag in skipped { try? await session.nack(tag, requeue: true, channel: Self.getChannel) }
            await session.close()
            return done
        } catch {
            for tag in skipped { try? await session.nack(tag, requeue: true, channel: Self.getChannel) }
            await session.close()
            throw error
        }
    }
}
