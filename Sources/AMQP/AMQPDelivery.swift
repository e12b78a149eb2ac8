/// A message received from a queue.
public struct AMQPDelivery: Sendable {
    public let deliveryTag: UInt64
    public let exchange: String
    public let routingKey: String
    public let redelivered: Bool
    public let body: [UInt8]
    public let messageID: String?
    public let headers: [String: AMQPValue]

    public init(
        deliveryTag: UInt64, exchange: String, routingKey: String, redelivered: Bool, body: [UInt8], messageID: String?,
        headers: [String: AMQPValue]
    ) {
        self.deliveryTag = deliveryTag
        self.exchange = exchange
        self.routingKey = routingKey
        self.redelivered = redelivered
        self.body = body
        self.messageID = messageID
        self.headers = headers
    }
}
