import Foundation
import Postgres
import SchedulerCore
import SchedulerStore
import TestSupport
import Testing

/// Hook calls queued with what they tell of: once each, to whom may hear of it.
@Suite("Hook calls", .scratch)
struct HookCallsTests {
    static func user(_ pool: PostgresPool, _ email: String, admin: Bool = false) async throws -> Int64 {
        try #require(
            try await pool.query(
                "INSERT INTO auth_user (username, email, is_admin) VALUES ($1, $1, $2) RETURNING id", [email, admin ? "t" : "f"]
            ).first?["id"].flatMap { Int64($0) })
    }

    static func hook(_ pool: PostgresPool, _ user: Int64, _ event: HookEvent, _ target: String) async throws {
        try await pool.query(
            "INSERT INTO webhooks (user_id, event, target) VALUES ($1, $2, $3)", [String(user), event.rawValue, target])
    }

    /// Hook calls queued, by target, with their auth token.
    static func calls(_ pool: PostgresPool) async throws -> [(target: String, token: String?, body: JSONValue)] {
        try await pool.query("SELECT target, auth_token, body::text AS body FROM deliveries WHERE kind = 'webhook' ORDER BY target").map {
            ($0["target"] ?? "", $0["auth_token"], try JSONParser.parse($0["body"] ?? ""))
        }
    }

    @Test("a circuit's change is told once, however many workers see it; the next change is told again; admins' hooks only")
    func receiverChangesAreToldOnce() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        let admin = try await Self.user(pool, "admin@example.org", admin: true)
        let tenant = try await Self.user(pool, "tenant@example.org")
        try await Self.hook(pool, admin, .receiverOpened, "http://ops.example/opened")
        try await Self.hook(pool, admin, .receiverClosed, "http://ops.example/closed")
        // Written by hand: the API refuses a tenant's receiver hook; it still hears nothing.
        try await Self.hook(pool, tenant, .receiverOpened, "http://tenant.example/opened")
        let store = ReceiverStore(pool: pool, hookAuthToken: "ops-token")
        let data = JSONValue.object(["receiver": .string("http://r.example:80")])
        // Two workers' circuits open, one after the other: told once.
        #expect(try await store.announce(receiver: "http://r.example:80", opened: true, data: data))
        #expect(try await store.announce(receiver: "http://r.example:80", opened: true, data: data) == false)
        #expect(try await store.announce(receiver: "http://r.example:80", opened: false, data: data))
        #expect(try await store.announce(receiver: "http://r.example:80", opened: false, data: data) == false)
        #expect(try await store.announce(receiver: "http://r.example:80", opened: true, data: data))
        let calls = try await Self.calls(pool)
        #expect(calls.map(\.target) == ["http://ops.example/closed", "http://ops.example/opened", "http://ops.example/opened"])
        #expect(calls.allSatisfy { $0.token == "ops-token" })
        #expect(calls.first?.body.objectValue?["data"] == data)
        #expect(calls.first?.body.objectValue?["hook"]?.objectValue?["event"] == .string("receiver.closed"))
        // No schedule: the routing key every delivery queue binds still takes it.
        let keys = try await pool.query("SELECT DISTINCT routing_key FROM deliveries").compactMap { $0["routing_key"] }
        #expect(keys == ["schedule.none"])
    }

    @Test("a dead letter is told once, also when its record is written twice; a hook call's own dead letter tells nothing")
    func deadLettersAreToldOnce() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        let owner = try await Self.user(pool, "owner@example.org")
        let other = try await Self.user(pool, "other@example.org")
        try await Self.hook(pool, owner, .deliveryFailed, "http://owner.example/failed")
        try await Self.hook(pool, other, .deliveryFailed, "http://other.example/failed")
        let schedule = UUID()
        try await pool.query(
            "INSERT INTO schedules (id, endpoint, interval_definition, created_by) VALUES ($1, 'http://r.example/x', '1 minutes', $2)",
            [schedule.uuidString, String(owner)])
        let occurrence = DeliveryID.fresh()
        let hookCall = DeliveryID.fresh()
        try await pool.query(
            """
            INSERT INTO deliveries (id, schedule_id, kind, scheduled_for, routing_key, target, body, owner_id)
            VALUES ($1, $3, 'schedule', now(), 'schedule.x', NULL, NULL, NULL),
                   ($2, $3, 'webhook', now(), 'schedule.x', 'http://h/', '{}', $4)
            """, [occurrence.uuidString, hookCall.uuidString, schedule.uuidString, String(owner)])
        let store = DeliveryStore(pool: pool)
        let dead = [
            DeliveryStore.Attempt(id: occurrence, state: .dead, attempts: 3, status: 500, error: "HTTP 500", latencyMilliseconds: 5),
            DeliveryStore.Attempt(id: hookCall, state: .dead, attempts: 3, status: 500, error: "HTTP 500", latencyMilliseconds: 5),
        ]
        try await store.record(dead)
        try await store.record(dead)  // a redelivered job's record
        let calls = try await Self.calls(pool).filter { $0.target.hasSuffix("/failed") }
        #expect(calls.map(\.target) == ["http://owner.example/failed"], "the owner's hook, once; not another tenant's")
        let data = try #require(calls.first?.body.objectValue?["data"]?.objectValue)
        #expect(data["delivery_id"] == .string(occurrence.lowercasedText) && data["reason"] == .string("HTTP 500"))
        #expect(data["attempts"] == .int(3) && data["last_status"] == .int(500) && data["origin"] == .string("scheduled"))
        let states = try await pool.query(
            "SELECT state FROM deliveries WHERE id = ANY($1::uuid[])",
            [
                "{\(occurrence.lowercasedText),\(hookCall.lowercasedText)}"
            ]
        ).compactMap { $0["state"] }
        #expect(states == ["dead", "dead"], "recorded as ever")
    }

    @Test("workers alive: each counts the others seen lately and knows its rank; a stopped one leaves the count")
    func workersAlive() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        let store = ReceiverStore(pool: pool)
        func alive(_ id: String) async throws -> [Int] {
            let seen = try await store.workers(alive: id)
            return [seen.count, seen.rank]
        }
        #expect(try await alive("b") == [1, 0])
        #expect(try await alive("a") == [2, 0])
        #expect(try await alive("b") == [2, 1])
        try await pool.query("UPDATE workers SET seen_at = now() - interval '1 minute' WHERE id = 'a'")
        #expect(try await alive("b") == [1, 0], "a was not seen for a minute")
        try await store.workerStopped("b")
        #expect(try await pool.query("SELECT count(*) AS n FROM workers").first?["n"] == "1")
        // Limits set by hand are kept over restarts and listed for the workers.
        try await store.setLimits(ReceiverLimits(concurrency: 400, rate: 5, burst: 10), receiver: "http://r.example:80")
        #expect(try await store.workers(alive: "b").limits == ["http://r.example:80": ReceiverLimits(concurrency: 400, rate: 5, burst: 10)])
        try await store.setLimits(ReceiverLimits(), receiver: "http://r.example:80")
        #expect(try await store.workers(alive: "b").limits.isEmpty)
    }

    @Test("a schedule beat cannot compute is paused, and its owner's schedule.paused hooks are told why")
    func quarantineIsTold() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        let owner = try await Self.user(pool, "owner@example.org")
        try await Self.hook(pool, owner, .schedulePaused, "http://owner.example/paused")
        let schedule = UUID()
        try await pool.query(
            """
            INSERT INTO schedules (id, endpoint, cron_definition, next_send_at, created_by)
            VALUES ($1, 'http://r.example/x', '99 * * * *', now() - interval '1 second', $2)
            """, [schedule.uuidString, String(owner)])
        let claim = try await DeliveryStore(pool: pool).claimDue(now: Date(), limit: 10)
        #expect(claim.quarantined.map(\.id) == [schedule])
        let calls = try await Self.calls(pool)
        #expect(calls.map(\.target) == ["http://owner.example/paused"])
        let data = try #require(calls.first?.body.objectValue?["data"]?.objectValue)
        #expect(data["schedule_id"] == .string(schedule.lowercasedText) && data["cause"] == .string("invalid_definition"))
        #expect(data["paused_by"] == .null && data["reason"]?.stringValue?.isEmpty == false)
    }
}
