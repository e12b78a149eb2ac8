import AMQP
import Dispatch
import Foundation
import Logging
import SchedulerCore
import SchedulerStore

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

    /// Re-drives every dead letter `matches` accepts and returns their delivery ids (or
    /// message ids). The rest stay in the queue.
    public func redrive(where matches: @escaping @Sendable (AMQPDelivery) -> Bool = { _ in true }) async throws -> [String] {
        let queue = DispatchQueue(label: "dead-letter-redriver")
        let topology = DeliveryTopology.make(policy)
        let brokerURL = brokerURL
        let store = store
        // Messages are taken one at a time on the redriver's own connection and thread.
        return try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result {
                    let connection = try AMQPConnection(url: brokerURL, heartbeat: 0)
                    defer { connection.close() }
                    let getChannel: UInt16 = 1
                    let publishChannel: UInt16 = 2
                    try connection.openChannel(getChannel)
                    try connection.openChannel(publishChannel)
                    try connection.declare(topology, channel: getChannel)
                    try connection.enableConfirms(channel: publishChannel)
                    var moved: [String] = []
                    var skipped: [UInt64] = []
                    defer { for tag in skipped { try? connection.nack(tag, requeue: true, channel: getChannel) } }
                    while let message = try connection.get(queue: DeliveryTopology.deadQueue, channel: getChannel) {
                        guard matches(message) else {
                            skipped.append(message.deliveryTag)
                            continue
                        }
                        let id = message.messageID ?? ""
                        if let uuid = UUID(uuidString: id) {
                            // The record first: a worker must find it queued when the job arrives.
                            try Self.blocking { try await store.requeue([uuid]) }
                        }
                        var headers = message.headers.filter { !$0.key.hasPrefix("x-") }
                        headers[DeliveryHeaders.attempt] = .int(1)
                        let tag = try connection.publish(
                            AMQPOutgoingMessage(
                                exchange: DeliveryTopology.exchange, routingKey: message.routingKey, body: message.body,
                                messageID: message.messageID, headers: headers),
                            channel: publishChannel)
                        try connection.waitForConfirms(upTo: tag, channel: publishChannel)
                        try connection.ack(message.deliveryTag, channel: getChannel)
                        moved.append(id)
                    }
                    return moved
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
        return try box.result!.get()
    }
}

/// Carries a result from a task to the thread waiting on it (written before the signal,
/// read after it).
final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}
