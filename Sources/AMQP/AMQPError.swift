/// A librabbitmq or broker failure, with the library's or the broker's own words.
public struct AMQPError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The TCP connection or the login failed, or the connection broke.
        case connection
        /// The broker closed a channel or the connection (reply code and text).
        case broker
        /// A publish was refused (nack) or returned as unroutable.
        case rejected
        /// Confirms did not arrive in time.
        case timeout
        /// A bad URL or argument.
        case usage
    }

    public let kind: Kind
    public let code: Int
    public let message: String

    public init(kind: Kind, code: Int = 0, message: String) {
        self.kind = kind
        self.code = code
        self.message = message
    }

    public var description: String {
        code == 0 ? "AMQP error: \(message)" : "AMQP error \(code): \(message)"
    }
}
