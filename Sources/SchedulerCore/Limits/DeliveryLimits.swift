/// Bounds on what the delivery pipeline takes from the broker and from receivers.
public enum DeliveryLimits {
    /// RabbitMQ's `x-delivery-limit` on `scheduler.deliveries`: past it the broker itself
    /// dead-letters a job (a backstop; workers dead-letter poison jobs sooner, at
    /// `MAX_REDELIVERIES`, with a reason and a record).
    public static let brokerDeliveryLimit = 20
    /// The highest attempt number a message header may claim; larger is read as this.
    public static let maximumAttempt = 1000
    /// Bytes of a receiver's answer body read at most; past it the answer's status is
    /// used and the connection is dropped (the body is never kept).
    public static let maximumResponseBytes = 1_048_576
}
