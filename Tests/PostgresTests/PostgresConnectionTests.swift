import Foundation
import Postgres
import Synchronization
import TestSupport
import Testing

@Suite("PostgreSQL through libpq", .scratch)
struct PostgresConnectionTests {
    @Test("parameters go as text, NULL as nil, and rows come back by name")
    func parameters() async throws {
        let connection = try await PostgresConnection.connect(url: try TestDatabase.adminURL, logger: TestDatabase.logger)
        let rows = try await connection.query(
            "SELECT $1::int + 1 AS next, $2::text AS nothing, $3::text AS quote, now() AS at", ["41", nil, "it's; DROP TABLE x"])
        let row = try #require(rows.first)
        #expect(row["next"] == "42")
        #expect(row["nothing"] == nil)
        #expect(row["quote"] == "it's; DROP TABLE x")
        #expect(row["at"]?.hasSuffix("+00") == true, "sessions run in UTC")
    }

    @Test("a refused statement is a PostgresError with its SQLSTATE and message")
    func errors() async throws {
        let connection = try await PostgresConnection.connect(url: try TestDatabase.adminURL, logger: TestDatabase.logger)
        await #expect {
            try await connection.query("SELECT * FROM no_such_table")
        } throws: { error in
            let error = error as? PostgresError
            return error?.kind == .query && error?.code == "42P01" && error?.message.contains("no_such_table") == true
        }
        // The connection is still usable afterwards.
        #expect(try await connection.query("SELECT 1").first?[0] == "1")
    }

    @Test("a prepared statement runs again and again, and is prepared again after its table changed or it was dropped")
    func prepared() async throws {
        let connection = try await PostgresConnection.connect(url: try TestDatabase.fresh(), logger: TestDatabase.logger)
        try await connection.execute("CREATE TABLE things (id int PRIMARY KEY, name text)")
        try await connection.execute("INSERT INTO things SELECT n, 'thing ' || n FROM generate_series(1, 20) AS n")
        let byID = PreparedStatement("SELECT * FROM things WHERE id = $1")
        // Past the five custom plans, where PostgreSQL may switch to a generic one.
        for id in 1...12 { #expect(try await connection.query(byID, [String(id)]).first?["name"] == "thing \(id)") }
        #expect(try await connection.query(byID, ["21"]).count == 0)
        #expect(try await connection.query("SELECT count(*) FROM pg_prepared_statements").first?[0] == "1")
        // The table changes under the plan: that use fails, the next is prepared again.
        try await connection.execute("ALTER TABLE things ADD COLUMN size int DEFAULT 7")
        do {
            let row = try await connection.query(byID, ["3"]).first
            #expect(row?["size"] == "7")
        } catch let error as PostgresError {
            #expect(error.code == "0A000", "\(error)")
        }
        #expect(try await connection.query(byID, ["3"]).first?["size"] == "7")
        // The session's statements dropped behind its back.
        try await connection.execute("DEALLOCATE ALL")
        await #expect(throws: PostgresError.self) { try await connection.query(byID, ["4"]) }
        #expect(try await connection.query(byID, ["4"]).first?["name"] == "thing 4")
        // Bad input is refused as for a plain statement, and the connection goes on.
        await #expect(throws: PostgresError.self) { try await connection.query(byID, ["not a number"]) }
        await #expect(throws: PostgresError.self) { try await connection.query(byID, ["1\u{0}"]) }
        await #expect(throws: PostgresError.self) { try await connection.query(PreparedStatement("SELEC oops"), []) }
        #expect(try await connection.query(byID, ["5"]).first?["name"] == "thing 5")
    }

    @Test("two transactions that deadlock both complete: the one PostgreSQL aborts is run again")
    func deadlockRetried() async throws {
        let pool = try await TestDatabase.freshPool(size: 2)
        defer { pool.close() }
        try await pool.query("CREATE TABLE pair (id int PRIMARY KEY, touched int NOT NULL DEFAULT 0)")
        try await pool.query("INSERT INTO pair VALUES (1), (2)")
        let runs = Runs()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (first, second) in [(1, 2), (2, 1)] {
                group.addTask { try await Self.cross(pool: pool, first, second, runs: runs) }
            }
            try await group.waitForAll()
        }
        // At least one abort and its retry (on a busy machine a retry may meet the other again).
        #expect(runs.count.withLock { $0 } >= 3, "one of the two ran again")
        let touched = try await pool.query("SELECT sum(touched) FROM pair").first?[0]
        #expect(touched == "4", "each committed run touched both rows once; the aborted one left nothing")
    }

    final class Runs: Sendable {
        let count = Mutex(0)
        /// How many first runs hold their first row.
        let holding = Mutex(0)
    }

    /// Locks row `first`, waits (the first two runs) until the other transaction has locked its
    /// own (a barrier, not a sleep: on a busy machine a sleep may end before the other begins),
    /// then wants row `second`.
    static func cross(pool: PostgresPool, _ first: Int, _ second: Int, runs: Runs) async throws {
        try await pool.withTransaction { connection in
            let run = runs.count.withLock { count in
                count += 1
                return count
            }
            try await connection.query("UPDATE pair SET touched = touched + 1 WHERE id = $1", [String(first)])
            if run <= 2 {
                runs.holding.withLock { $0 += 1 }
                let deadline = Date().addingTimeInterval(30)
                while runs.holding.withLock({ $0 }) < 2 && Date() < deadline { try await Task.sleep(for: .milliseconds(10)) }
            }
            try await connection.query("UPDATE pair SET touched = touched + 1 WHERE id = $1", [String(second)])
        }
    }

    @Test("a NUL character in a parameter is refused, not truncated")
    func nul() async throws {
        let connection = try await PostgresConnection.connect(url: try TestDatabase.adminURL, logger: TestDatabase.logger)
        await #expect(throws: PostgresError.self) { try await connection.query("SELECT $1::text", ["a\u{0}b"]) }
    }

    @Test("a URL with several hosts reaches the one that answers and takes writes (libpq's target_session_attrs)")
    func severalHosts() async throws {
        let admin = try #require(URLComponents(string: try TestDatabase.adminURL))
        let live = "\(admin.host ?? "127.0.0.1"):\(admin.port ?? 5432)"
        // The first host has nobody listening.
        let url = "postgres://\(admin.user ?? "postgres")@127.0.0.1:1,\(live)\(admin.path)?target_session_attrs=read-write"
        let pool = PostgresPool(url: url, size: 1, logger: TestDatabase.logger)
        defer { pool.close() }
        let row = try await pool.query("SELECT current_setting('transaction_read_only') AS ro, inet_server_port() AS port").first
        #expect(row?["ro"] == "off")
        #expect(row?["port"] == String(admin.port ?? 5432))
    }

    @Test("a server that is not there is a connection error")
    func unreachable() async throws {
        await #expect {
            try await PostgresConnection.connect(url: "postgres://postgres@127.0.0.1:1/none", logger: TestDatabase.logger)
        } throws: { error in
            (error as? PostgresError)?.kind == .connection
        }
    }
}

@Suite("Connection pool", .scratch)
struct PostgresPoolTests {
    @Test("many tasks share a few connections, each alone on its connection")
    func sharing() async throws {
        let pool = PostgresPool(url: try TestDatabase.adminURL, size: 3, logger: TestDatabase.logger)
        defer { pool.close() }
        let pids = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<30 {
                group.addTask {
                    try await pool.withConnection { connection in
                        try await connection.query("SELECT pg_sleep(0.01)")
                        return try await connection.query("SELECT pg_backend_pid()").first?[0] ?? ""
                    }
                }
            }
            return try await group.reduce(into: Set<String>()) { $0.insert($1) }
        }
        #expect(pids.count <= 3 && pids.count >= 1)
    }

    @Test("a transaction that throws leaves nothing behind")
    func rollback() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        try await pool.query("CREATE TABLE t (x int)")
        struct Boom: Error {}
        await #expect(throws: Boom.self) {
            try await pool.withTransaction { connection in
                try await connection.query("INSERT INTO t VALUES (1)")
                throw Boom()
            }
        }
        try await pool.withTransaction { connection in try await connection.query("INSERT INTO t VALUES (2)") }
        #expect(try await pool.query("SELECT x FROM t").map { $0[0] } == ["2"])
    }

    @Test("a connection killed by the server is replaced, and the pool carries on")
    func heals() async throws {
        let pool = PostgresPool(url: try TestDatabase.adminURL, size: 1, logger: TestDatabase.logger)
        defer { pool.close() }
        let pid = try #require(try await pool.query("SELECT pg_backend_pid()").first?[0])
        let other = try await PostgresConnection.connect(url: try TestDatabase.adminURL, logger: TestDatabase.logger)
        try await other.query("SELECT pg_terminate_backend($1::int)", [pid])
        // The first use of the dead connection fails as a connection error...
        await #expect {
            try await pool.query("SELECT 1")
        } throws: { error in
            (error as? PostgresError)?.kind == .connection
        }
        // ...and the next one gets a new connection.
        let newPID = try #require(try await pool.query("SELECT pg_backend_pid()").first?[0])
        #expect(newPID != pid)
    }
}
