import Foundation
import Postgres
import SchedulerStore
import Synchronization
import TestSupport
import Testing

@Suite("Connections warmed before their first use", .scratch)
struct PoolWarmTests {
    struct Refused: Error {}

    /// The backend process ids `body` saw, one per call.
    static func backends(of pool: PostgresPool, _ body: @escaping @Sendable (PostgresConnection) async throws -> Void = { _ in })
        async -> [String]
    {
        let seen = Mutex<[String]>([])
        await pool.warm { connection in
            let pid = try await connection.query("SELECT pg_backend_pid()").first?[0] ?? "?"
            seen.withLock { $0.append(pid) }
            try await body(connection)
        }
        return seen.withLock { $0 }
    }

    /// The backends of `count` queries run at once, each holding its connection a moment.
    static func serving(_ pool: PostgresPool, count: Int) async throws -> Set<String> {
        try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<count {
                group.addTask { try await pool.query("SELECT pg_backend_pid(), pg_sleep(0.2)").first?[0] ?? "?" }
            }
            return try await group.reduce(into: Set<String>()) { $0.insert($1) }
        }
    }

    @Test("warming opens every connection the pool may have and runs once on each; a failure loses none")
    func opensAll() async throws {
        let pool = PostgresPool(url: try await TestDatabase.fresh(), size: 3, logger: TestDatabase.logger)
        defer { pool.close() }
        let first = try await pool.query("SELECT pg_backend_pid()").first?[0]
        let warmed = await Self.backends(of: pool)
        #expect(warmed.count == 3 && Set(warmed).count == 3, "\(warmed)")
        #expect(first.map(warmed.contains) == true, "the connection already open is warmed too, not a fourth opened")
        #expect(try await pool.query("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()").first?[0] == "3")
        // A body that fails: the connections stay, and all three serve at once afterwards.
        let again = await Self.backends(of: pool) { _ in throw Refused() }
        #expect(Set(again) == Set(warmed))
        #expect(try await Self.serving(pool, count: 3) == Set(warmed))
    }

    @Test("a worker's pool is readied for its reads: every connection has the read prepared before the first job")
    func deliveryReads() async throws {
        let pool = PostgresPool(url: try await TestDatabase.fresh(), size: 4, logger: TestDatabase.logger)
        defer { pool.close() }
        await DeliveryStore(pool: pool).warmReads()
        let prepared = Mutex<[String]>([])
        await pool.warm { connection in
            let statements = try await connection.query("SELECT statement FROM pg_prepared_statements").compactMap { $0[0] }
            prepared.withLock { $0.append(statements.joined()) }
        }
        let statements = prepared.withLock { $0 }
        #expect(statements.count == 4)
        #expect(statements.allSatisfy { $0.contains("FROM unnest($1::uuid[]) AS u(id)") }, "\(statements)")
    }

    @Test("a connection the pool opens after warming (PostgreSQL dropped the first ones) is warmed before its first use")
    func reopenedConnectionsAreWarmed() async throws {
        let pool = PostgresPool(url: try await TestDatabase.fresh(), size: 2, logger: TestDatabase.logger)
        defer { pool.close() }
        await DeliveryStore(pool: pool).warmReads()
        let database = try #require(try await pool.query("SELECT current_database()").first?[0])
        let before = try await Self.serving(pool, count: 2)
        #expect(before.count == 2)
        // As a restart would: the server ends every connection of the pool.
        let admin = try await PostgresConnection.connect(url: try TestDatabase.adminURL, logger: TestDatabase.logger)
        try await admin.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [database])
        var answer: String?
        for _ in 0..<5 where answer == nil {
            answer = try? await pool.query("SELECT pg_backend_pid() || ' ' || (SELECT count(*) FROM pg_prepared_statements)").first?[0]
        }
        let parts = try #require(answer).split(separator: " ").map(String.init)
        #expect(!before.contains(parts[0]), "a new connection")
        #expect(parts[1] == "1", "the read was prepared on it before this first query")
    }
}
