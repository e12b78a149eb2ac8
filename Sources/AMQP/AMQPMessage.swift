/// A header or queue argument value.
public enum AMQPValue: Sendable, Hashable, CustomStringConvertible {
    case string(String)
    case int(Int64)

    public var stringValue: String? {
        switch self {
        case .string(let value): value
        case .int(let value): String(value)
        }
    }

    public var intValue: Int64? {
        switch self {
        case .string(let value): Int64(value)
        case .int(let value): value
        }
    }

    public var description: String { stringValue ?? "" }
}

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

/// What queue.declare reports.
public struct AMQPQueueCounts: Sendable, Equatable {
    public let messages: Int
    public let consumers: Int
}

/// Exchanges, queues and bindings to declare.
public struct AMQPTopology: Sendable {
    public struct Exchange: Sendable {
        public let name: String
        public let type: String
        public init(name: String, type: String) {
            self.name = name
            self.type = type
        }
    }

    public struct Queue: Sendable {
        public let name: String
        public let arguments: [String: AMQPValue]
        public init(name: String, arguments: [String: AMQPValue]) {
            self.name = name
            self.arguments = arguments
        }
    }

    public struct Binding: Sendable {
        public let queue: String
        public let exchange: String
        public let routingKey: String
        public init(queue: String, exchange: String, routingKey: String) {
            self.queue = queue
            self.exchange = exchange
            self.routingKey = routingKey
        }
    }

    public let exchanges: [Exchange]
    public let queues: [Queue]
    public let bindings: [Binding]

    public init(exchanges: [Exchange], queues: [Queue], bindings: [Binding]) {
        self.exchanges = exchanges
        self.queues = queues
        self.bindings = bindings
    }
}
