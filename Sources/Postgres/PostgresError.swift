/// A libpq failure: the SQLSTATE code when the server gave one, and libpq's own message.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The connection could not be made, or it broke.
        case connection
        /// The server refused a statement.
        case query
        /// The pool was closed.
        case closed
        /// No connection of the pool came free in time.
        case busy
    }

    public let kind: Kind
    /// The SQLSTATE code, for example `23505` for a unique violation.
    public let code: String?
    public let message: String

    public init(kind: Kind, code: String? = nil, message: String) {
        self.kind = kind
        self.code = code
        self.message = message
    }

    public var description: String {
        let trimmed = message.trimmingCharacters(in: .whitespacesAndNewlines)
        return code.map { "PostgreSQL error \($0): \(trimmed)" } ?? "PostgreSQL error: \(trimmed)"
    }

    public var isUniqueViolation: Bool { code == "23505" }
}
