/// Bounds on what the delivery pipeline takes from the broker and from receivers.
public enum DeliveryLimits {
    /// RabbitMQ's `x-delivery-limit` on `scheduler.deliveries`: past it the broker itself
    /// dead-letters a job (a backstop; workers dead-letter poison jobs sooner, at
    /// `MAX_REDELIVERIES`, with a reason and a record).
    public static let brokerDeliveryLimit = 20
    /// `x-delivery-limit` on `scheduler.dead-letters`. Listing, re-driving or purging by a
    /// filter takes every dead letter and hands back the ones it leaves; RabbitMQ 4.0 to 4.2
    /// count each hand-back toward a quorum queue's delivery limit, 20 by default, and past it
    /// would drop the message. An explicit limit this high is never reached (3.x counts, and
    /// takes, only non-negative limits, so not -1).
    public static let deadLetterDeliveryLimit = 1_000_000
    /// Jobs in one message at most: beat publishes held jobs in batches of up to this many
    /// (`JobBatch`), and a worker's held window (`WORKER_HELD_WINDOW`, in jobs) is this many
    /// jobs per message of the held queue's prefetch. A batch with more is dead-lettered whole.
    public static let jobsPerMessage = 100
    /// Bytes of a batch message at most (a job is about 170): a larger one is dead-lettered
    /// whole, unread.
    public static let maximumBatchBytes = jobsPerMessage * 1_024
    /// The highest attempt number a message header may claim; larger is read as this.
    public static let maximumAttempt = 1000
    /// Bytes of a receiver's answer body read at most; past it the answer's status is
    /// used and the connection is dropped (the body is never kept).
    public static let maximumResponseBytes = 1_048_576
}
