/// What queue.declare reports.
public struct AMQPQueueCounts: Sendable, Equatable {
    public let messages: Int
    public let consumers: Int
}
