import Foundation
import Postgres
import SchedulerCore
import SchedulerStore
import TestSupport
import Testing

/// Failures that cannot pile up: schedules that keep failing are paused, a tenant's dead
/// letters are bounded, receivers unseen for a while are pruned.
@Suite("Failure bounds", .scratch)
struct FailureBoundsTests {
    /// A user and one of their schedules.
    static func schedule(_ pool: PostgresPool, owner email: String) async throws -> (UUID, Int64) {
        let user = try #require(
            try await pool.query(
                "INSERT INTO auth_user (username, email) VALUES ($1, $1) ON CONFLICT ((lower(email))) DO UPDATE SET email = EXCLUDED.email RETURNING id",
                [email]
            ).first?["id"].flatMap { Int64($0) })
        let id = UUID()
        try await pool.query(
            "INSERT INTO schedules (id, endpoint, interval_definition, next_send_at, created_by) VALUES ($1, 'http://r.example/x', '1 minutes', now(), $2)",
            [id.uuidString, String(user)])
        return (id, user)
    }

    /// Records of `schedule`'s occurrences, oldest first, in these states; returns their ids.
    @discardableResult
    static func occurrences(_ pool: PostgresPool, _ schedule: UUID, _ states: [String]) async throws -> [UUID] {
        var ids: [UUID] = []
        for (index, state) in states.enumerated() {
            let id = UUID()
            try await pool.query(
                """
                INSERT INTO deliveries (id, schedule_id, kind, scheduled_for, routing_key, state, finished_at)
                VALUES ($1, $2, 'schedule', now() - make_interval(mins => $3::int), 'schedule.x', $4,
                        CASE WHEN $4 IN ('delivered', 'dead', 'purged') THEN now() END)
                """, [id.uuidString, schedule.uuidString, String(states.count - index), state])
            ids.append(id)
        }
        return ids
    }

    static func state(_ pool: PostgresPool, _ schedule: UUID) async throws -> (enabled: Bool, reason: String?) {
        let row = try #require(
            try await pool.query("SELECT enabled, disabled_reason FROM schedules WHERE id = $1", [schedule.uuidString]).first)
        return (row["enabled"] == "t", row["disabled_reason"])
    }

    @Test("the last N occurrences dead: paused with the reason, its queued jobs cancelled; a delivery among them: not paused")
    func failuresInARow() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        let store = DeliveryStore(pool: pool)
        let (failing, _) = try await Self.schedule(pool, owner: "a@example.org")
        let dead = try await Self.occurrences(pool, failing, ["delivered", "dead", "purged", "dead"])
        let queued = try await Self.occurrences(pool, failing, ["queued"])
        let (mixed, _) = try await Self.schedule(pool, owner: "a@example.org")
        let mixedDead = try await Self.occurrences(pool, mixed, ["dead", "dead", "delivered", "dead"])
        let (young, _) = try await Self.schedule(pool, owner: "a@example.org")
        let youngDead = try await Self.occurrences(pool, young, ["dead", "dead"])

        let paused = try await store.pauseFailing(
            deadIDs: [dead.last!, mixedDead.last!, youngDead.last!], afterFailures: 3, tenantDeadLetters: 0)
        #expect(paused.map(\.scheduleID) == [failing])
        #expect(paused.first?.why == .failures)
        let after = try await Self.state(pool, failing)
        #expect(!after.enabled)
        #expect(after.reason == "paused: its last 3 occurrences failed for good; fix the receiver, then enable it again")
        let cancelled = try await pool.query("SELECT state FROM deliveries WHERE id = $1", [queued[0].uuidString]).first?["state"]
        #expect(cancelled == "cancelled")
        #expect(try await Self.state(pool, mixed).enabled, "a delivery among the last three")
        #expect(try await Self.state(pool, young).enabled, "only two occurrences so far")
        // Off: nothing is paused.
        let (other, _) = try await Self.schedule(pool, owner: "a@example.org")
        let otherDead = try await Self.occurrences(pool, other, ["dead", "dead", "dead", "dead"])
        #expect(try await store.pauseFailing(deadIDs: otherDead, afterFailures: 0, tenantDeadLetters: 0).isEmpty)
        #expect(try await Self.state(pool, other).enabled)
    }

    @Test("a tenant at DEAD_LETTERS_PER_TENANT: the schedule adding one more is paused, the dead letters kept; another tenant is not")
    func deadLettersPerTenant() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        let store = DeliveryStore(pool: pool)
        let (first, owner) = try await Self.schedule(pool, owner: "busy@example.org")
        let (second, _) = try await Self.schedule(pool, owner: "busy@example.org")
        try await Self.occurrences(pool, first, ["dead", "delivered", "dead", "delivered", "dead"])
        let newest = try await Self.occurrences(pool, second, ["delivered", "dead"])
        let (elsewhere, _) = try await Self.schedule(pool, owner: "calm@example.org")
        let theirs = try await Self.occurrences(pool, elsewhere, ["delivered", "dead"])
        #expect(try await store.deadLetterCount(owner: owner, limit: 100) == 4)
        #expect(try await store.deadLetterCount(owner: owner, limit: 2) == 2, "counted up to the limit only")

        #expect(try await store.pauseFailing(deadIDs: newest + theirs, afterFailures: 10, tenantDeadLetters: 5).isEmpty, "4 of 5")
        let more = try await Self.occurrences(pool, second, ["dead"])
        let paused = try await store.pauseFailing(deadIDs: more + theirs, afterFailures: 10, tenantDeadLetters: 5)
        #expect(paused.map(\.scheduleID) == [second])
        #expect(paused.first?.why == .deadLetters)
        #expect(try await Self.state(pool, second).reason?.contains("DEAD_LETTERS_PER_TENANT") == true)
        #expect(try await Self.state(pool, first).enabled, "only the schedule that added one")
        #expect(try await Self.state(pool, elsewhere).enabled)
        #expect(try await store.deadLetterCount(owner: owner, limit: 100) == 5, "no dead letter dropped")
    }

    @Test("receivers unseen for RECEIVER_RETENTION_DAYS are deleted; recent ones and those an operator holds open are kept")
    func receiversPruned() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        try await pool.query(
            """
            INSERT INTO receivers (receiver, updated_at, held_open) VALUES
                ('http://old.example:80', now() - interval '8 days', false),
                ('http://held.example:80', now() - interval '30 days', true),
                ('http://recent.example:80', now() - interval '6 days', false)
            """)
        #expect(try await ReceiverStore(pool: pool).prune(unseenForDays: 7) == 1)
        let left = try await pool.query("SELECT receiver FROM receivers ORDER BY receiver").map { $0["receiver"] ?? "" }
        #expect(left == ["http://held.example:80", "http://recent.example:80"])
    }
}
