import AMQP
import SchedulerCore

/// The RabbitMQ topology of the delivery pipeline (also in `rabbitmq/definitions.json`):
///
/// - topic exchange `scheduler.deliveries` → quorum queue `scheduler.deliveries` (`schedule.#`);
/// - topic exchange `scheduler.held` → quorum queue `scheduler.held` (`schedule.#`): jobs
///   beat publishes ahead of their due time (`BEAT_LOOKAHEAD`), consumed beside the main
///   queue with a window of their own, so that they never stand in front of jobs due now;
/// - per retry delay D: fanout exchange `scheduler.retry.D` → quorum queue `scheduler.retry.D`
///   whose messages expire after D and dead-letter back to `scheduler.deliveries` with their
///   original routing key (at-least-once dead-lettering);
/// - per park delay D: `scheduler.park.D`, built like a retry queue (see `parkDelays`);
/// - fanout exchange `scheduler.dead` → quorum queue `scheduler.dead-letters` (with a delivery
///   limit never reached: see `DeliveryLimits.deadLetterDeliveryLimit`).
///
/// `rabbitmq/definitions.json` declares the same queues with their type only and gives the
/// rest (TTL, dead-lettering, limits) as policies, which an operator can change on a running
/// broker; a queue that exists with other arguments is kept as it is (`AMQPConnection.declare`).
public enum DeliveryTopology {
    public static let exchange = "scheduler.deliveries"
    public static let queue = "scheduler.deliveries"
    /// Where beat publishes a job ahead of its due time; workers hold it until then.
    public static let heldExchange = "scheduler.held"
    public static let heldQueue = "scheduler.held"
    public static let deadExchange = "scheduler.dead"
    public static let deadQueue = "scheduler.dead-letters"

    public static func retryName(milliseconds: Int) -> String {
        "scheduler.retry.\(RetryPolicy.label(milliseconds: milliseconds))"
    }

    /// Delays of the park queues: a job whose receiver cannot take it now waits there
    /// (without holding a worker's prefetch slot, and without using an attempt), then
    /// returns to `scheduler.deliveries`. Short for a busy receiver, long for one that is
    /// paused or whose circuit breaker is open.
    public static let parkDelays = [1_000, 10_000]

    public static func parkName(milliseconds: Int) -> String {
        "scheduler.park.\(RetryPolicy.label(milliseconds: milliseconds))"
    }

    static let quorum: [String: AMQPValue] = ["x-queue-type": .string("quorum")]

    public static func make(_ policy: RetryPolicy) -> AMQPTopology {
        var exchanges = [
            AMQPTopology.Exchange(name: exchange, type: "topic"), AMQPTopology.Exchange(name: heldExchange, type: "topic"),
            AMQPTopology.Exchange(name: deadExchange, type: "fanout"),
        ]
        // A backstop for poison jobs: past it the broker dead-letters the job itself.
        let consumed = quorum.merging([
            "x-delivery-limit": .int(Int64(DeliveryLimits.brokerDeliveryLimit)),
            "x-dead-letter-exchange": .string(deadExchange),
        ]) { $1 }
        var queues = [
            AMQPTopology.Queue(name: queue, arguments: consumed), AMQPTopology.Queue(name: heldQueue, arguments: consumed),
            AMQPTopology.Queue(
                name: deadQueue, arguments: quorum.merging(["x-delivery-limit": .int(Int64(DeliveryLimits.deadLetterDeliveryLimit))]) { $1 }
            ),
        ]
        var bindings = [
            AMQPTopology.Binding(queue: queue, exchange: exchange, routingKey: "schedule.#"),
            AMQPTopology.Binding(queue: heldQueue, exchange: heldExchange, routingKey: "schedule.#"),
            AMQPTopology.Binding(queue: deadQueue, exchange: deadExchange, routingKey: ""),
        ]
        let delays =
            Set(policy.delays).sorted().map { (retryName(milliseconds: $0), $0) } + parkDelays.map { (parkName(milliseconds: $0), $0) }
        for (name, delay) in delays {
            exchanges.append(AMQPTopology.Exchange(name: name, type: "fanout"))
            queues.append(
                AMQPTopology.Queue(
                    name: name,
                    arguments: quorum.merging([
                        "x-message-ttl": .int(Int64(delay)),
                        "x-dead-letter-exchange": .string(exchange),
                        "x-dead-letter-strategy": .string("at-least-once"),
                        "x-overflow": .string("reject-publish"),
                    ]) { $1 }))
            bindings.append(AMQPTopology.Binding(queue: name, exchange: name, routingKey: ""))
        }
        return AMQPTopology(exchanges: exchanges, queues: queues, bindings: bindings)
    }

    /// Every queue of the topology, main queue first.
    public static func queueNames(_ policy: RetryPolicy) -> [String] {
        make(policy).queues.map(\.name)
    }
}

/// Headers the pipeline puts on messages.
public enum DeliveryHeaders {
    /// The attempt this message is for, from 1.
    public static let attempt = "x-attempt"
    /// On dead letters: why, the last HTTP status (if any), and the attempts made.
    public static let reason = "x-failure-reason"
    public static let lastStatus = "x-last-status"
    public static let lastError = "x-last-error"
    public static let attempts = "x-attempts"
    public static let failedAt = "x-failed-at"
    /// On a batch (`JobBatch`): how many jobs it holds.
    public static let jobs = "x-jobs"
    /// Set by quorum queues on a redelivery: how many times the job was handed out before.
    public static let deliveryCount = "x-delivery-count"
}

extension DeliveryJob {
    /// The job as a message on `scheduler.deliveries` for `attempt`, or on `scheduler.held`
    /// when it is published ahead of its due time.
    public func message(attempt: Int = 1, held: Bool = false) -> AMQPOutgoingMessage {
        AMQPOutgoingMessage(
            exchange: held ? DeliveryTopology.heldExchange : DeliveryTopology.exchange, routingKey: routingKey, body: serializedBytes,
            messageID: deliveryID.lowercasedText, headers: [DeliveryHeaders.attempt: .int(Int64(attempt))])
    }
}
