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
