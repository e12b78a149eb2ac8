import Foundation
import Postgres
import SchedulerCore
import SchedulerStore
import TestSupport
import Testing

/// Beat's claims across New York's 2027 clock changes, against the real database: the
/// schedule's daylight-saving choices decide which occurrences are claimed and what its next
/// run is. (A receiver cannot wait for a real clock change; the claim is beat's decision,
/// made here at the instants it would be made.)
@Suite("Beat across daylight saving", .scratch)
struct BeatDaylightSavingTests {
    func date(_ text: String) -> Date { Timestamp.parse(text)! }

    /// A New York crontab schedule with these choices, due at `due`.
    func schedule(_ pool: PostgresPool, cron: String, due: String, gap: String = "skip", overlap: String = "first") async throws -> UUID {
        let id = UUID()
        try await pool.query(
            """
            INSERT INTO schedules (id, endpoint, cron_definition, timezone, next_send_at, dst_gap, dst_overlap)
            VALUES ($1, 'http://r.example/x', $2, 'America/New_York', $3, $4, $5)
            """, [id.uuidString, cron, due, gap, overlap])
        return id
    }

    func next(_ pool: PostgresPool, _ id: UUID) async throws -> String? {
        try await pool.query("SELECT next_send_at FROM schedules WHERE id = $1", [id.uuidString]).first?["next_send_at"]
            .flatMap(Timestamp.parse).map(Timestamp.format)
    }

    @Test("spring forward: a skipped 02:30 is claimed at 03:00 EDT with shift, not that day with skip")
    func gap() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        let store = DeliveryStore(pool: pool)
        // Both ran on 13 March at 02:30 EST; their next runs, computed at that claim:
        let shift = try await schedule(pool, cron: "30 2 * * *", due: "2027-03-13T07:30:00Z", gap: "shift")
        let skip = try await schedule(pool, cron: "30 2 * * *", due: "2027-03-13T07:30:00Z")
        _ = try await store.claimDue(now: date("2027-03-13T07:30:00Z"), limit: 10)
        #expect(try await next(pool, shift) == "2027-03-14T07:00:00Z", "03:00 EDT, when the clock jumps over 02:30")
        #expect(try await next(pool, skip) == "2027-03-15T06:30:00Z", "no 02:30 on the 14th")
        let claim = try await store.claimDue(now: date("2027-03-14T07:00:00Z"), limit: 10)
        #expect(claim.jobs.map(\.scheduleID) == [shift])
        #expect(claim.jobs.first?.scheduledFor == date("2027-03-14T07:00:00Z"))
        #expect(try await next(pool, shift) == "2027-03-15T06:30:00Z")
    }

    @Test("fall back: 01:30 is claimed at its first showing, its second, or both")
    func overlap() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        let store = DeliveryStore(pool: pool)
        var ids: [String: UUID] = [:]
        for choice in ["first", "second", "both"] {
            ids[choice] = try await schedule(pool, cron: "30 1 * * *", due: "2027-11-06T05:30:00Z", overlap: choice)
        }
        _ = try await store.claimDue(now: date("2027-11-06T05:30:00Z"), limit: 10)
        #expect(try await next(pool, ids["first"]!) == "2027-11-07T05:30:00Z")
        #expect(try await next(pool, ids["second"]!) == "2027-11-07T06:30:00Z")
        #expect(try await next(pool, ids["both"]!) == "2027-11-07T05:30:00Z")
        let first = try await store.claimDue(now: date("2027-11-07T05:30:00Z"), limit: 10)
        #expect(Set(first.jobs.compactMap(\.scheduleID)) == [ids["first"]!, ids["both"]!])
        #expect(try await next(pool, ids["both"]!) == "2027-11-07T06:30:00Z", "and again at 01:30 EST")
        #expect(try await next(pool, ids["first"]!) == "2027-11-08T06:30:00Z")
        let second = try await store.claimDue(now: date("2027-11-07T06:30:00Z"), limit: 10)
        #expect(Set(second.jobs.compactMap(\.scheduleID)) == [ids["second"]!, ids["both"]!])
        // Two occurrences of `both`, two delivery ids.
        let records = try await pool.query(
            "SELECT count(DISTINCT id) AS n FROM deliveries WHERE schedule_id = $1", [ids["both"]!.uuidString]
        ).first?["n"]
        #expect(records == "3", "the 6th, and the 7th twice")
    }
}
