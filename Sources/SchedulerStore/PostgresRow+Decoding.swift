import Foundation
import Postgres
import SchedulerCore

/// Reading PostgreSQL's text format into Swift values. A value that does not read is a
/// programming error in the SQL (the columns are typed), so it fails loudly.
extension PostgresRow {
    func string(_ column: String) -> String? { self[column] }

    func requiredString(_ column: String) throws -> String {
        guard let value = self[column] else { throw StoreError.unexpectedNull(column) }
        return value
    }

    func int64(_ column: String) throws -> Int64? {
        guard let text = self[column] else { return nil }
        guard let value = Int64(text) else { throw StoreError.unreadable(column, text) }
        return value
    }

    func requiredInt64(_ column: String) throws -> Int64 {
        guard let value = try int64(column) else { throw StoreError.unexpectedNull(column) }
        return value
    }

    func bool(_ column: String) throws -> Bool {
        switch self[column] {
        case "t": return true
        case "f": return false
        case let other: throw StoreError.unreadable(column, other ?? "NULL")
        }
    }

    func date(_ column: String) throws -> Date? {
        guard let text = self[column] else { return nil }
        guard let date = Timestamp.parse(text) else { throw StoreError.unreadable(column, text) }
        return date
    }

    func requiredDate(_ column: String) throws -> Date {
        guard let value = try date(column) else { throw StoreError.unexpectedNull(column) }
        return value
    }

    func uuid(_ column: String) throws -> UUID {
        guard let text = self[column], let uuid = UUID(text: text) else {
            throw StoreError.unreadable(column, self[column] ?? "NULL")
        }
        return uuid
    }
}

/// Parameter text for PostgreSQL.
enum SQL {
    static func text(_ date: Date?) -> String? { date.map(Timestamp.format) }
    static func text(_ bool: Bool?) -> String? { bool.map { $0 ? "true" : "false" } }
    static func text(_ int: Int?) -> String? { int.map { String($0) } }
    static func text(_ int: Int64?) -> String? { int.map { String($0) } }
    static func text(_ uuid: UUID) -> String { uuid.lowercasedText }
}

public enum StoreError: Error, CustomStringConvertible {
    case unexpectedNull(String)
    case unreadable(String, String)

    public var description: String {
        switch self {
        case .unexpectedNull(let column): "column \(column) is unexpectedly NULL"
        case .unreadable(let column, let text): "column \(column) holds an unreadable value: \(text)"
        }
    }
}

/// One page of a list, and how many rows there are in all.
public struct Page<Item: Sendable>: Sendable {
    public let items: [Item]
    public let count: Int
}
