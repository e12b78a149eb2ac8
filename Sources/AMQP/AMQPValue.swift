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
