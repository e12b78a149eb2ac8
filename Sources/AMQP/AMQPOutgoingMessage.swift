/// A message to publish: persistent, `application/json`.
public struct AMQPOutgoingMessage: Sendable {
    public var exchange: String
    public var routingKey: String
    public var body: [UInt8]
    public var messageID: String?
    /// Per-message TTL in milliseconds (the `expiration` property).
    public var expirationMilliseconds: Int?
    public var headers: [String: AMQPValue]

    public init(
        exchange: String, routingKey: String, body: [UInt8], messageID: String? = nil,
        expirationMilliseconds: Int? = nil, headers: [String: AMQPValue] = [:]
    ) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.body = body
        self.messageID = messageID
        self.expirationMilliseconds = expirationMilliseconds
        self.headers = headers
    }
}
