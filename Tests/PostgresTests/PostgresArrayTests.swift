import Foundation
import Postgres
import SchedulerCore
import TestSupport
import Testing

@testable import SchedulerStore

@Suite("Array literals for batch statements")
struct PostgresArrayTests {
    @Test(
        "hostile text goes through an array parameter unchanged: quotes, backslashes, braces, commas, NULL as text, control characters, any script"
    )
    func roundTrip() async throws {
        let values: [String?] = [
            "plain", "", "NULL", nil, #"a"b"#, #"a\b"#, #"\""#, #"\\"#, "{1,2}", "a,b", " spaced ", "tab\there", "line\nbreak",
            "\u{1}\u{7F}", "é ü 漢字 🙂", String(repeating: #"\""#, count: 1000), "trailing\\",
        ]
        let connection = try await PostgresConnection.connect(url: try TestDatabase.adminURL, logger: TestDatabase.logger)
        let rows = try await connection.query(
            "SELECT value FROM unnest($1::text[]) WITH ORDINALITY AS u(value, n) ORDER BY n", [PostgresArray.literal(values)])
        #expect(rows.map { $0["value"] } == values)
        let ids = (0..<3).map { _ in UUID() }
        let read = try await connection.query("SELECT unnest($1::uuid[]) AS id", [PostgresArray.literal(ids.map(SQL.text))])
        #expect(read.map { $0["id"] } == ids.map { $0.uuidString.lowercased() })
    }
}
