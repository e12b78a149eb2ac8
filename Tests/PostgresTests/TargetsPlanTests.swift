import Foundation
import Postgres
import Synchronization
import TestSupport
import Testing

@testable import SchedulerStore

/// The worker's read at a due instant and its record of outcomes look their rows up by
/// primary key, also when PostgreSQL made the statement's generic plan while the tables were
/// empty (a new week's partition, a new install): such a plan used to scan `schedules` and
/// the partitions whole on every read until the next ANALYZE (36-46 ms a read in the bench's
/// steady phase), and the record's scanned the new week's partition.
@Suite("The worker's read of targets and record of outcomes", .scratch)
struct TargetsPlanTests {
    /// The generic plan of `statement`, made on a fresh database's empty tables on a
    /// connection with the worker's settings (`DeliveryStore.workerSettings`).
    static func genericPlan(of statement: PreparedStatement, types: String, arguments: String) async throws -> String {
        let pool = PostgresPool(
            url: try await TestDatabase.fresh(), size: 1, settings: DeliveryStore.workerSettings, logger: TestDatabase.logger)
        defer { pool.close() }
        let plan = Mutex<[String]>([])
        await pool.warm { connection in
            _ = try await connection.query("SET plan_cache_mode = force_generic_plan")
            _ = try await connection.query("PREPARE probe(\(types)) AS \(statement.sql)")
            let rows = try await connection.query("EXPLAIN (COSTS OFF) EXECUTE probe(\(arguments))")
            plan.withLock { $0 = rows.compactMap { $0[0] } }
        }
        return plan.withLock { $0.joined(separator: "\n") }
    }

    /// Ids of deliveries due now and in a week (next week's partition, empty until then).
    static func ids() -> String {
        let week = 7 * 86_400.0
        return [Date(), Date(), Date() + week, Date() + week].map { DeliveryID.fresh(at: $0).uuidString }.joined(separator: ",")
    }

    @Test("the read's plan, made generic on empty tables, looks each id up and scans no table")
    func readLooksUpWhateverTheStatistics() async throws {
        let text = try await Self.genericPlan(
            of: DeliveryStore.targetsStatement, types: "uuid[], int", arguments: "'{\(Self.ids())}', 1000")
        #expect(text.contains("Index Scan using schedules_pkey"), "\(text)")
        #expect(text.contains("_pkey on deliveries_"), "\(text)")
        #expect(!text.contains("Seq Scan"), "\(text)")
    }

    @Test("the record's plan, made generic on empty partitions, looks the ids up in each one's primary key")
    func recordLooksUpWhateverTheStatistics() async throws {
        let four = { (value: String) in "'{\(Array(repeating: value, count: 4).joined(separator: ","))}'" }
        let text = try await Self.genericPlan(
            of: DeliveryStore.recordStatement, types: "uuid[], text[], int[], int[], text[], float8[], float8[]",
            arguments: ["'{\(Self.ids())}'", four("delivered"), four("1"), four("200"), four("NULL"), four("1.5"), four("2.5")]
                .joined(separator: ", "))
        let week = DeliveryHistoryTests.weekName(Date() + 7 * 86_400)
        #expect(text.contains("on \(week)_pkey"), "next week's partition by its key: \(text)")
        #expect(!text.contains("Seq Scan"), "\(text)")
    }
}

/// Beat's claim reads due schedules in order from `schedules_due_fair` and stops at its
/// limit: with the output's `next_send_at` a text column, an `ORDER BY next_send_at` sorted
/// that text instead, after a scan of the whole table, 89 ms a claim of 2,000 in a burst of
/// 50,000 (every claim sorted every due row again).
@Suite("Beat's claim", .scratch)
struct ClaimPlanTests {
    @Test("the claim's plan, with 5,000 schedules due, is the due index in order: no sort, no scan of the table")
    func claimReadsTheIndexInOrder() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        try await pool.query(
            """
            INSERT INTO schedules (id, endpoint, interval_definition, next_send_at)
            SELECT gen_random_uuid(), 'http://r.example/x', '86400 seconds', now() - interval '1 second'
            FROM generate_series(1, 5000)
            """)
        try await pool.query("ANALYZE schedules")
        for mode in ["force_custom_plan", "force_generic_plan"] {
            let rows = try await pool.withTransaction { connection in
                try await connection.execute("SET LOCAL plan_cache_mode = \(mode)")
                try await connection.execute("PREPARE \(mode)(timestamptz, int, timestamptz) AS \(DeliveryStore.claimStatement.sql)")
                return try await connection.execute("EXPLAIN (COSTS OFF) EXECUTE \(mode)(now(), 2000, now())")
            }
            let text = rows.compactMap { $0[0] }.joined(separator: "\n")
            #expect(text.contains("Index Scan using schedules_due_fair on schedules"), "\(mode): \(text)")
            #expect(!text.contains("Sort"), "\(mode): \(text)")
            #expect(!text.contains("Seq Scan on schedules"), "\(mode): \(text)")
        }
        // The claimed rows are advanced through the primary key, not by hashing the table
        // (what PostgreSQL chooses for 2,000 of 5,000 rows without the claim's settings).
        let ids = try await pool.query("SELECT id FROM schedules LIMIT 2000").compactMap { $0["id"] }.joined(separator: ",")
        for (index, settings) in [DeliveryStore.claimSettings, "SELECT 1"].enumerated() {
            let rows = try await pool.withTransaction { connection in
                try await connection.execute(settings)
                try await connection.execute(
                    "PREPARE advance\(index)(uuid[], timestamptz[], boolean[], int[]) AS \(DeliveryStore.advanceStatement.sql)")
                return try await connection.execute(
                    """
                    EXPLAIN (COSTS OFF) EXECUTE advance\(index)(
                        '{\(ids)}', array_fill(now(), ARRAY[2000]), array_fill(true, ARRAY[2000]), array_fill(1, ARRAY[2000]))
                    """)
            }
            let text = rows.compactMap { $0[0] }.joined(separator: "\n")
            let byKey = text.contains("Index Scan using schedules_pkey on schedules") && !text.contains("Seq Scan on schedules")
            #expect(byKey == (settings == DeliveryStore.claimSettings), "\(settings): \(text)")
        }
        // And it claims in that order: the limit's worth, each once.
        let claim = try await DeliveryStore(pool: pool).claimDue(now: Date(), limit: 2000)
        #expect(claim.claimed == 2000)
        #expect(Set(claim.jobs.map(\.scheduleID)).count == 2000)
    }
}
