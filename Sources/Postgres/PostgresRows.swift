/// The rows of a result, every value in PostgreSQL's text format (nil for NULL).
public struct PostgresRows: Sendable, Sequence {
    public let columns: [String]
    public let rows: [PostgresRow]
    /// Rows written by an INSERT, UPDATE or DELETE.
    public let affectedRows: Int

    public init(columns: [String], rows: [PostgresRow], affectedRows: Int) {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
    }

    public var first: PostgresRow? { rows.first }
    public var count: Int { rows.count }
    public func makeIterator() -> IndexingIterator<[PostgresRow]> { rows.makeIterator() }
}

public struct PostgresRow: Sendable {
    public let values: [String?]
    let columnIndex: [String: Int]

    init(values: [String?], columnIndex: [String: Int]) {
        self.values = values
        self.columnIndex = columnIndex
    }

    public subscript(_ index: Int) -> String? { values[index] }

    /// The value of the named column; nil for NULL or for a column the query did not select.
    public subscript(_ column: String) -> String? {
        columnIndex[column].flatMap { values[$0] }
    }
}
