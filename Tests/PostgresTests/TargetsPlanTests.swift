import Foundation
import Postgres
import Synchronization
import TestSupport
import Testing

@testable import SchedulerStore

/// The worker's read at a due instant is one lookup by primary key per id, also when
/// PostgreSQL made the statement's generic plan while the tables were empty (a new week's
/// partition, a new install): such a plan used to scan `schedules` and the partitions whole
/// on every read until the next ANALYZE (36-46 ms a read in the bench's steady phase).
@Suite("The worker's read of targets")
struct TargetsPlanTests {
    @Test("its plan, made generic on empty tables, looks each id up and scans no table")
    func lookupsWhateverTheStatistics() async throws {
        let pool = PostgresPool(url: try await TestDatabase.fresh(), size: 1, logger: TestDatabase.logger)
        defer { pool.close() }
        let plan = Mutex<[String]>([])
        let ids = (0..<3).map { _ in DeliveryID.fresh().uuidString }.joined(separator: ",")
        await pool.warm { connection in
            _ = try await connection.query("SET plan_cache_mode = force_generic_plan")
            _ = try await connection.query("PREPARE probe(uuid[], int) AS \(DeliveryStore.targetsStatement.sql)")
            let rows = try await connection.query("EXPLAIN (COSTS OFF) EXECUTE probe('{\(ids)}', 1000)")
            plan.withLock { $0 = rows.compactMap { $0[0] } }
        }
        let text = plan.withLock { $0.joined(separator: "\n") }
        #expect(text.contains("Index Scan using schedules_pkey"), "\(text)")
        #expect(text.contains("_pkey on deliveries_"), "\(text)")
        #expect(!text.contains("Seq Scan"), "\(text)")
    }
}
