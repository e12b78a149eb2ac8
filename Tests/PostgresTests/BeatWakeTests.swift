import Foundation
import Postgres
import SchedulerStore
import TestSupport
import Testing

/// What wakes beat (`NOTIFY scheduler_schedules`, migration 0021): a schedule written
/// enabled with a next run within a minute. Beat reads the next due time again at least
/// every 30 s, so anything later waits for that read and costs no round now.
@Suite("What wakes beat", .scratch, .timeLimit(.minutes(1)))
struct BeatWakeTests {
    /// Whether `change` sends a notification beat hears within half a second.
    static func wakes(_ listener: PostgresListener, _ change: () async throws -> Void) async throws -> Bool {
        _ = try await listener.notifications(until: Date())  // nothing left over
        try await change()
        return try await !listener.notifications(until: Date().addingTimeInterval(0.5)).isEmpty
    }

    @Test("due within a minute wakes beat; due later, a pause, a delete and beat's own updates do not")
    func soonOnly() async throws {
        try await TestDatabase.withFreshPool { pool in
            let listener = try await PostgresListener(url: pool.url, channel: "scheduler_schedules", logger: TestDatabase.logger)
            defer { listener.stop() }
            let id = UUID().lowercasedText
            let insert = { (due: String) in
                try await pool.query(
                    "INSERT INTO schedules (id, endpoint, interval_definition, next_send_at) VALUES ($1, 'http://r.example/x', '1 hours', now() + interval '\(due)')",
                    [id])
            }
            let update = { (sql: String) in try await pool.query("UPDATE schedules SET \(sql) WHERE id = $1", [id]) }
            #expect(try await !Self.wakes(listener) { _ = try await insert("1 day") }, "created for tomorrow")
            #expect(
                try await Self.wakes(listener) { _ = try await update("next_send_at = now() + interval '10 seconds'") }, "moved to soon")
            #expect(try await !Self.wakes(listener) { _ = try await update("enabled = false") }, "paused")
            #expect(try await Self.wakes(listener) { _ = try await update("enabled = true") }, "resumed, due soon")
            #expect(
                try await !Self.wakes(listener) {
                    try await pool.withTransaction { connection in
                        try await connection.execute("SET LOCAL scheduler.beat = 'on'")
                        _ = try await connection.query("UPDATE schedules SET next_send_at = now() WHERE id = $1", [id])
                    }
                }, "beat's own claim")
            #expect(try await !Self.wakes(listener) { _ = try await pool.query("DELETE FROM schedules WHERE id = $1", [id]) }, "deleted")
            #expect(try await Self.wakes(listener) { _ = try await insert("0 seconds") }, "created due now")
        }
    }
}
