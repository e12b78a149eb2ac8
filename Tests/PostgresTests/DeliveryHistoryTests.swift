import Foundation
import Postgres
import SchedulerCore
import SchedulerStore
import TestSupport
import Testing

@Suite("Delivery history: week partitions and retention", .scratch)
struct DeliveryHistoryTests {
    static let day: TimeInterval = 86_400

    static var utc: Calendar {
        var calendar = Calendar(identifier: .iso8601)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }

    /// The Monday (UTC) of `date`'s week.
    static func monday(_ date: Date) -> Date {
        utc.dateInterval(of: .weekOfYear, for: date)!.start
    }

    /// The partition of `date`'s week: `deliveries_` and its Monday.
    static func weekName(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd"
        return "deliveries_" + formatter.string(from: monday(date))
    }

    /// Inserts a record with `id`, in `state`, finished at `finished` (if given).
    static func insert(_ pool: PostgresPool, id: UUID, state: String, finished: Date? = nil) async throws {
        try await pool.query(
            """
            INSERT INTO deliveries (id, kind, scheduled_for, routing_key, state, finished_at)
            VALUES ($1, 'schedule', now(), 'schedule.x', $2, $3)
            """, [id.uuidString, state, finished.map(Timestamp.format)])
    }

    /// Which table holds each of `ids` (missing ones are absent).
    static func homes(_ pool: PostgresPool, _ ids: [UUID]) async throws -> [UUID: String] {
        let rows = try await pool.query(
            "SELECT id, tableoid::regclass::text AS home FROM deliveries WHERE id = ANY($1::uuid[])",
            ["{" + ids.map(\.uuidString).joined(separator: ",") + "}"])
        var homes: [UUID: String] = [:]
        for row in rows {
            if let id = row["id"].flatMap(UUID.init(uuidString:)) { homes[id] = row["home"] }
        }
        return homes
    }

    @Test("weeks past the retention are dropped whole; their dead, queued and retrying records move to the default partition")
    func retention() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        let history = DeliveryHistory(pool: pool, retentionDays: 30)
        let now = Date()
        let old = now.addingTimeInterval(-60 * Self.day)
        #expect(try await history.addPartitions(from: old, to: old) == 1)

        func occurrence(_ at: Date) -> UUID { DeliveryID.derive(scheduleID: UUID(), scheduledFor: at) }
        let delivered = (0..<200).map { occurrence(old.addingTimeInterval(Double($0))) }
        for id in delivered { try await Self.insert(pool, id: id, state: "delivered", finished: old) }
        let dead = occurrence(old)
        let queued = occurrence(old.addingTimeInterval(1))
        let retrying = occurrence(old.addingTimeInterval(2))
        let cancelled = occurrence(old.addingTimeInterval(3))
        let purged = occurrence(old.addingTimeInterval(4))
        try await Self.insert(pool, id: dead, state: "dead", finished: old)
        try await Self.insert(pool, id: queued, state: "queued")
        try await Self.insert(pool, id: retrying, state: "retrying")
        try await Self.insert(pool, id: cancelled, state: "cancelled", finished: old)
        try await Self.insert(pool, id: purged, state: "purged", finished: old)
        let recent = (0..<20).map { occurrence(now.addingTimeInterval(Double(-$0))) }
        for id in recent { try await Self.insert(pool, id: id, state: "delivered", finished: now) }
        // Records that fit no day (ids from before the partitioning are random): in the default
        // partition, deleted one by one once finished that long ago.
        let legacyOld = UUID(uuidString: "ffffffff-0000-4000-8000-000000000001")!
        let legacyRecent = UUID(uuidString: "ffffffff-0000-4000-8000-000000000002")!
        try await Self.insert(pool, id: legacyOld, state: "delivered", finished: now.addingTimeInterval(-40 * Self.day))
        try await Self.insert(pool, id: legacyRecent, state: "delivered", finished: now.addingTimeInterval(-Self.day))

        let before = try await Self.homes(pool, [dead, queued, recent[0], legacyOld])
        #expect(before[dead] == Self.weekName(old), "an occurrence's record is in its week's partition")
        #expect(before[recent[0]] == Self.weekName(now))
        #expect(before[legacyOld] == "deliveries_default")

        let done = try await history.maintain()
        #expect(done.dropped == 1, "the week older than 30 days is dropped")
        let names = try await history.partitions().map(\.name)
        #expect(!names.contains(Self.weekName(old)))
        for offset in -1...7 { #expect(names.contains(Self.weekName(now.addingTimeInterval(Double(offset) * Self.day)))) }
        #expect(names.last == "deliveries_default")

        let after = try await Self.homes(pool, delivered + [dead, queued, retrying, cancelled, purged, legacyOld, legacyRecent] + recent)
        #expect(after[dead] == "deliveries_default", "a dead letter keeps its record")
        #expect(after[queued] == "deliveries_default")
        #expect(after[retrying] == "deliveries_default")
        #expect(after[cancelled] == nil && after[purged] == nil)
        #expect(delivered.allSatisfy { after[$0] == nil }, "the old week's delivered records are gone")
        #expect(recent.allSatisfy { after[$0] == Self.weekName(now) }, "today's records are untouched")
        #expect(after[legacyOld] == nil && after[legacyRecent] == "deliveries_default")

        // The store still finds the kept dead letter, and a worker still reads its target.
        let deadPage = try await DeliveryStore(pool: pool).dead(limit: 10, offset: 0)
        #expect(deadPage.items.map(\.id) == [dead])
        #expect(try await DeliveryStore(pool: pool).targets([queued])[queued]?.state == .queued)

        #expect(try await history.maintain() == .init(added: 0, dropped: 0), "a second run changes nothing")
        #expect(try await DeliveryHistory(pool: pool, retentionDays: 0).maintain().dropped == 0)
    }

    @Test("a week is dropped only when all of it is older than the retention")
    func retentionBoundary() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        let now = Date()
        let history = DeliveryHistory(pool: pool, retentionDays: 30)
        try await history.addPartitions(from: now.addingTimeInterval(-50 * Self.day), to: now)
        let weeks = try await history.partitions().compactMap(\.day)
        try await history.maintain()
        let kept = Set(try await history.partitions().compactMap(\.day))
        // A week (Monday M) goes when M + 7 days <= today - 30 days, in UTC days.
        let today = Self.utc.startOfDay(for: now)
        let cutoff = Self.utc.date(byAdding: .day, value: -30, to: today)!
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd"
        for week in weeks {
            let monday = formatter.date(from: week)!
            let wholeWeekOlder = Self.utc.date(byAdding: .day, value: 7, to: monday)! <= cutoff
            #expect(kept.contains(week) == !wholeWeekOlder, "week of \(week), cutoff \(cutoff)")
        }
        #expect(weeks.count >= 8 && kept.count < weeks.count)
    }

    @Test("a record of a week without a partition waits in the default one and moves into its week's partition when it is added")
    func partitionAddedLater() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        let later = Date().addingTimeInterval(60 * Self.day)
        let id = DeliveryID.derive(scheduleID: UUID(), scheduledFor: later)
        try await Self.insert(pool, id: id, state: "queued")
        #expect(try await Self.homes(pool, [id])[id] == "deliveries_default")
        let history = DeliveryHistory(pool: pool, retentionDays: 30)
        #expect(try await history.addPartitions(from: later, to: later) == 1)
        #expect(try await Self.homes(pool, [id])[id] == Self.weekName(later))
        #expect(try await history.addPartitions(from: later, to: later) == 0)
    }

    @Test("a worker's lookup by id reads only the partition of the ids' week")
    func lookupsArePruned() async throws {
        let pool = try await TestDatabase.freshPool()
        defer { pool.close() }
        let ids = [DeliveryID.derive(scheduleID: UUID(), scheduledFor: Date()), DeliveryID.fresh()]
        let plan = try await pool.query(
            "EXPLAIN SELECT id FROM deliveries WHERE id = ANY($1::uuid[])", ["{" + ids.map(\.uuidString).joined(separator: ",") + "}"]
        ).compactMap { $0[0] }.joined(separator: "\n")
        let scanned = Set(plan.matches(of: /deliveries_[0-9a-z]+/).map { String($0.output) }.filter { !$0.hasSuffix("pkey") })
        #expect(scanned == [Self.weekName(Date())], "\(plan)")
    }

    @Test("a schedule with a long history is deleted at once: its records are kept as they are, its queued jobs cancelled")
    func deleteKeepsHistory() async throws {
        let url = try await TestDatabase.fresh()
        let setup = PostgresPool(url: url, size: 1, logger: TestDatabase.logger)
        defer { setup.close() }
        let schedule = UUID()
        try await setup.query(
            "INSERT INTO schedules (id, endpoint, next_send_at) VALUES ($1, 'http://r.example/', now() + interval '1 day')",
            [schedule.uuidString])
        // A record a second for hours (a 1-second schedule keeps 2.6 million under the default
        // retention: 9 s to rewrite a million here), two of them jobs still queued.
        let records = 20_000
        try await setup.query(
            """
            INSERT INTO deliveries (id, schedule_id, kind, scheduled_for, routing_key, state, attempts, last_status,
                                    published_at, finished_at)
            SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '8' || substr(md5(i::text), 1, 19))::uuid,
                   $1, 'schedule', t, $3, CASE WHEN i < 2 THEN 'queued' ELSE 'delivered' END, 1, 200, t, t
            FROM generate_series(0, $2 - 1) AS i, LATERAL (SELECT now() - i * interval '1 second' AS t) AS x
            """, [schedule.uuidString, String(records), "schedule.\(schedule.uuidString.lowercased())"])
        let before = try await setup.query("SELECT sum(xmin::text::bigint)::text FROM deliveries WHERE state = 'delivered'")
        // The API's statement timeout, made short: deleting must not depend on the history's length.
        let api = PostgresPool(url: url, size: 1, statementTimeout: 1, logger: TestDatabase.logger)
        defer { api.close() }
        #expect(try await ScheduleStore(pool: api).delete(id: schedule))
        let states = try await setup.query(
            "SELECT state, count(*) FILTER (WHERE schedule_id = $1) AS kept FROM deliveries GROUP BY state ORDER BY state",
            [schedule.uuidString]
        ).map { "\($0["state"] ?? "") \($0["kept"] ?? "")" }
        #expect(states == ["cancelled 2", "delivered \(records - 2)"])
        // Not one finished record was written again (no new row versions).
        let after = try await setup.query("SELECT sum(xmin::text::bigint)::text FROM deliveries WHERE state = 'delivered'")
        #expect(after.first?[0] == before.first?[0])
        #expect(try await setup.query("SELECT 1 FROM schedules WHERE id = $1", [schedule.uuidString]).count == 0)
    }

    @Test("the migration to partitions keeps every record that exists, readable by id")
    func migrationKeepsRows() async throws {
        let name = "h_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        let admin = try await PostgresConnection.connect(url: try TestDatabase.adminURL, logger: TestDatabase.logger)
        try await admin.execute("CREATE DATABASE \(name)")
        let url = try TestDatabase.url(database: name)
        // The migrations before partitioning, then records as the old version wrote them.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("migrations-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let all = try Migrator(directory: TestDatabase.migrationsDirectory, logger: TestDatabase.logger).migrations()
        for migration in all where migration.version <= 5 {
            try migration.sql.write(
                toFile: folder + "/" + String(format: "%04d_%@.sql", migration.version, migration.name), atomically: true, encoding: .utf8)
        }
        try await Migrator(directory: folder, logger: TestDatabase.logger).migrate(databaseURL: url)
        let connection = try await PostgresConnection.connect(url: url, logger: TestDatabase.logger)
        try await connection.execute(
            """
            INSERT INTO schedules (id, endpoint) VALUES ('11111111-1111-4111-8111-111111111111', 'http://example.com/');
            INSERT INTO deliveries (id, schedule_id, kind, scheduled_for, routing_key, state, attempts, last_status, body)
            SELECT gen_random_uuid(), '11111111-1111-4111-8111-111111111111', 'schedule', now() - i * interval '1 hour', 'schedule.1',
                   (ARRAY['delivered', 'dead', 'queued', 'retrying'])[1 + i % 4], i % 7, 200, json_build_object('i', i)
            FROM generate_series(1, 5000) AS i;
            """)
        let before = try await connection.query(
            "SELECT md5(string_agg(id::text || state || attempts || coalesce(body::text, ''), ',' ORDER BY id)) FROM deliveries"
        ).first?[0]
        let applied = try await Migrator(directory: TestDatabase.migrationsDirectory, logger: TestDatabase.logger).migrate(databaseURL: url)
        #expect(applied.map(\.version) == all.filter { $0.version > 5 }.map(\.version))
        let after = try await connection.query(
            "SELECT md5(string_agg(id::text || state || attempts || coalesce(body::text, ''), ',' ORDER BY id)) FROM deliveries"
        ).first?[0]
        #expect(after == before && after != nil, "the same 5,000 records, field for field")
        #expect(try await connection.query("SELECT relkind FROM pg_class WHERE relname = 'deliveries'").first?[0] == "p")
        let one = try await connection.query("SELECT id FROM deliveries ORDER BY id LIMIT 1").first?[0]
        #expect(try await connection.query("SELECT count(*) FROM deliveries WHERE id = $1", [one]).first?[0] == "1")
        // Deleting the schedule leaves its records as they are (0010 dropped the foreign key).
        try await connection.execute("DELETE FROM schedules")
        #expect(try await connection.query("SELECT count(*) FROM deliveries WHERE schedule_id IS NOT NULL").first?[0] == "5000")
    }

    @Test("delivery ids start with their occurrence's time in milliseconds, and extreme times do not trap")
    func idLayout() {
        let scheduleID = UUID()
        let at = Date(timeIntervalSince1970: 1_796_169_600.123)
        let id = DeliveryID.derive(scheduleID: scheduleID, scheduledFor: at)
        #expect(DeliveryID.milliseconds(of: id) == 1_796_169_600_123)
        #expect(id == DeliveryID.derive(scheduleID: scheduleID, scheduledFor: at), "the same occurrence, the same id")
        #expect(id != DeliveryID.derive(scheduleID: scheduleID, scheduledFor: at.addingTimeInterval(0.000_001)))
        #expect(id != DeliveryID.derive(scheduleID: UUID(), scheduledFor: at))
        #expect(id.uuidString.lowercased().hasPrefix("01a2340d-0c7b-8"), "time, then version 8: \(id)")
        let variant = id.uuid.8 >> 6
        #expect(variant == 0b10)
        for extreme in [Date.distantPast, Date.distantFuture, Date(timeIntervalSince1970: -1), Date(timeIntervalSince1970: 1e300)] {
            let milliseconds = DeliveryID.milliseconds(of: DeliveryID.derive(scheduleID: scheduleID, scheduledFor: extreme))
            #expect((0...(Int64(1) << 48 - 1)).contains(milliseconds))
        }
        let fresh = (0..<100).map { _ in DeliveryID.fresh(at: at) }
        #expect(Set(fresh).count == 100)
        #expect(fresh.allSatisfy { DeliveryID.milliseconds(of: $0) == 1_796_169_600_123 })
    }
}
