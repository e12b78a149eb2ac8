import Foundation
import Postgres
import TestSupport
import Testing

/// Every wait on PostgreSQL has a deadline: a statement that runs too long is cancelled
/// by the server, and a task waiting for a pool's connection gives up.
@Suite("PostgreSQL timeouts")
struct PostgresTimeoutTests {
    @Test("a statement past the statement timeout is cancelled (SQLSTATE 57014) and the connection stays usable")
    func statementTimeout() async throws {
        let pool = PostgresPool(url: try TestDatabase.adminURL, size: 1, statementTimeout: 0.3, logger: TestDatabase.logger)
        defer { pool.close() }
        let started = Date()
        await #expect {
            try await pool.query("SELECT pg_sleep(5)")
        } throws: { error in
            (error as? PostgresError)?.code == "57014"
        }
        #expect(Date().timeIntervalSince(started) < 3)
        #expect(try await pool.query("SELECT 1").first?[0] == "1")
    }

    @Test("a pool's session settings hold on every connection it opens, also one opened again later")
    func sessionSettings() async throws {
        let pool = PostgresPool(
            url: try TestDatabase.adminURL, size: 1, statementTimeout: 0.3, settings: ["enable_seqscan": "off", "work_mem": "2048"],
            logger: TestDatabase.logger)
        defer { pool.close() }
        let query =
            "SELECT current_setting('enable_seqscan') || ' ' || current_setting('work_mem') || ' ' || current_setting('statement_timeout')"
        #expect(try await pool.query(query).first?[0] == "off 2MB 300ms")
        // The server ends the connection, as a restart would; the pool opens another.
        _ = try? await pool.query("SELECT pg_terminate_backend(pg_backend_pid())")
        var answer: String?
        for _ in 0..<5 where answer == nil { answer = try? await pool.query(query).first?[0] }
        #expect(answer == "off 2MB 300ms")
    }

    @Test("a task that cannot get a connection in time gets a busy error, and the pool still serves afterwards")
    func checkoutTimeout() async throws {
        let pool = PostgresPool(url: try TestDatabase.adminURL, size: 1, checkoutTimeout: 0.3, logger: TestDatabase.logger)
        defer { pool.close() }
        // Connected first, so that the holder takes the connection at once (on a busy machine
        // opening it could take longer than the 200 ms below).
        #expect(try await pool.query("SELECT 1").first?[0] == "1")
        let holder = Task { try await pool.query("SELECT pg_sleep(1.5)") }
        try await Task.sleep(for: .milliseconds(200))
        let started = Date()
        await #expect {
            try await pool.query("SELECT 1")
        } throws: { error in
            (error as? PostgresError)?.kind == .busy
        }
        let waited = Date().timeIntervalSince(started)
        #expect(waited >= 0.25 && waited < 1.2, "waited \(waited) s")
        _ = try await holder.value
        #expect(try await pool.query("SELECT 1").first?[0] == "1")
    }
}
