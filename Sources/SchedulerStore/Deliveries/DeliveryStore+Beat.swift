import Foundation
import Postgres
import SchedulerCore

/// Beat's side of the outbox: claiming due schedules into delivery records, marking them
/// published, and what is due next.
extension DeliveryStore {
    /// What a claim found: the jobs to publish, and the schedules it disabled because their
    /// next run could not be computed (with the reason, also stored on the schedule).
    public struct Claim: Sendable {
        public var jobs: [DeliveryJob] = []
        public var quarantined: [(id: UUID, reason: String)] = []
        /// Occurrences recorded as missed (due longer ago than their catch-up window).
        public var missed: [DeliveryJob] = []
        /// How many due schedules the claim took (a full batch: there may be more).
        public var claimed = 0
    }

    /// Claims up to `limit` due schedules (skipping rows another beat holds), records one
    /// delivery per occurrence, advances each schedule, and commits; returns the jobs to
    /// publish. An occurrence recorded before (same delivery id) is not returned again.
    ///
    /// A row that cannot be read or whose next run cannot be computed within `limits` (a
    /// definition edited by hand, a time out of range) is quarantined: disabled, with the
    /// reason in `disabled_reason`, in the same transaction. The others carry on.
    ///
    /// With a `lookahead`, schedules due up to that many seconds after `now` are claimed
    /// too (their jobs are published early and held by the worker until their time); a
    /// next run is still computed from `now`, so a catch-up never skips one.
    ///
    /// Schedules due at the same instant are claimed in the order of their fair slot
    /// (migration 0015): a tenant's are spread over as many slots as it has schedules, so
    /// another tenant's few are published, and POSTed, among the first of a large burst.
    public func claimDue(now: Date, limit: Int, lookahead: Double = 0) async throws -> Claim {
        try await pool.withTransaction { connection in
            try await connection.execute("SET LOCAL scheduler.beat = 'on'")
            let due = try await connection.query(
                PreparedStatement(
                    """
                    SELECT id, cron_definition, interval_definition, timezone, next_send_at::text AS next_send_at, frequency, triggered,
                           start_at::text AS start_at, end_at::text AS end_at, catchup_window
                    FROM schedules
                    WHERE enabled AND next_send_at IS NOT NULL AND next_send_at <= $1
                    ORDER BY next_send_at, fair_slot
                    LIMIT $2
                    FOR UPDATE SKIP LOCKED
                    """), [SQL.text(now.addingTimeInterval(max(0, lookahead))), String(limit)])
            guard due.count > 0 else { return Claim() }
            var claim = Claim()
            claim.claimed = due.count
            var advanced: [UUID] = []
            var nextRuns: [String?] = []
            var stillEnabled: [String?] = []
            var triggeredCounts: [String?] = []
            for row in due {
                // The id is the primary key: a row without a readable one cannot be selected.
                guard let id = try? row.uuid("id") else { continue }
                do {
                    let fired = try Self.fire(row, now: now, limits: limits)
                    if let scheduled = fired.send {
                        claim.jobs.append(
                            DeliveryJob(
                                deliveryID: DeliveryID.derive(scheduleID: id, scheduledFor: scheduled), scheduleID: id,
                                scheduledFor: scheduled, kind: .schedule))
                    }
                    if let scheduled = fired.missed {
                        claim.missed.append(
                            DeliveryJob(
                                deliveryID: DeliveryID.derive(scheduleID: id, scheduledFor: scheduled), scheduleID: id,
                                scheduledFor: scheduled, kind: .schedule))
                    }
                    advanced.append(id)
                    nextRuns.append(SQL.text(fired.next))
                    stillEnabled.append(SQL.text(fired.enabled))
                    triggeredCounts.append(String(fired.triggered))
                } catch {
                    claim.quarantined.append((id, (error as? ScheduleTimingError)?.reason ?? "\(error)"))
                }
            }
            if !claim.quarantined.isEmpty {
                try await connection.query(
                    PreparedStatement(
                        """
                        UPDATE schedules s SET enabled = false, disabled_reason = u.reason,
                            paused_at = now(), paused_by = NULL, paused_note = NULL
                        FROM unnest($1::uuid[], $2::text[]) AS u(id, reason)
                        WHERE s.id = u.id
                        """),
                    [
                        PostgresArray.literal(claim.quarantined.map { SQL.text($0.id) }),
                        PostgresArray.literal(claim.quarantined.map { $0.reason }),
                    ])
            }
            guard !advanced.isEmpty else { return claim }
            let ids = PostgresArray.literal(advanced.map(SQL.text))
            try await connection.query(
                PreparedStatement(
                    """
                    UPDATE schedules s SET next_send_at = u.next, triggered = u.triggered, enabled = u.enabled
                    FROM unnest($1::uuid[], $2::timestamptz[], $3::boolean[], $4::int[]) AS u(id, next, enabled, triggered)
                    WHERE s.id = u.id
                    """),
                [ids, PostgresArray.literal(nextRuns), PostgresArray.literal(stillEnabled), PostgresArray.literal(triggeredCounts)])
            if !claim.missed.isEmpty {
                // Recorded as finished and never to be published (an infinite publish time keeps
                // them out of the unpublished index's range).
                try await connection.query(
                    PreparedStatement(
                        """
                        INSERT INTO deliveries (id, schedule_id, kind, scheduled_for, routing_key, state, publish_after, finished_at, last_error)
                        SELECT u.id, u.schedule_id, 'schedule', u.scheduled_for, u.routing_key, 'missed', 'infinity', now(),
                               'missed: due ' || to_char(u.scheduled_for AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                               || ', found after its catch-up window (beat was not running)'
                        FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[]) AS u(id, schedule_id, scheduled_for, routing_key)
                        ON CONFLICT (id) DO NOTHING
                        """),
                    [
                        PostgresArray.literal(claim.missed.map { SQL.text($0.deliveryID) }),
                        PostgresArray.literal(claim.missed.map { $0.scheduleID.map(SQL.text) }),
                        PostgresArray.literal(claim.missed.map { SQL.text($0.scheduledFor) }),
                        PostgresArray.literal(claim.missed.map(\.routingKey)),
                    ])
            }
            guard !claim.jobs.isEmpty else { return claim }
            let inserted = try await connection.query(
                PreparedStatement(
                    """
                    INSERT INTO deliveries (id, schedule_id, kind, scheduled_for, routing_key, publish_after)
                    SELECT u.id, u.schedule_id, 'schedule', u.scheduled_for, u.routing_key, now() + make_interval(secs => $5)
                    FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[]) AS u(id, schedule_id, scheduled_for, routing_key)
                    ON CONFLICT (id) DO NOTHING
                    RETURNING id
                    """),
                [
                    PostgresArray.literal(claim.jobs.map { SQL.text($0.deliveryID) }),
                    PostgresArray.literal(claim.jobs.map { $0.scheduleID.map(SQL.text) }),
                    PostgresArray.literal(claim.jobs.map { SQL.text($0.scheduledFor) }),
                    PostgresArray.literal(claim.jobs.map(\.routingKey)), String(publishLease),
                ])
            let fresh = Set(try inserted.map { try $0.uuid("id") })
            claim.jobs = claim.jobs.filter { fresh.contains($0.deliveryID) }
            return claim
        }
    }

    /// One due schedule fired at `now` (see `ScheduleFiring.fire`), or why it cannot be.
    static func fire(_ row: PostgresRow, now: Date, limits: ScheduleLimits) throws(ScheduleTimingError) -> ScheduleFiring {
        guard let text = row["next_send_at"], let scheduled = Timestamp.parse(text) else {
            throw ScheduleTimingError("next_send_at \(row["next_send_at"] ?? "NULL") cannot be read")
        }
        guard let zone = row["timezone"] else { throw ScheduleTimingError("timezone is NULL") }
        let timing = try ScheduleTiming.stored(
            cronDefinition: row["cron_definition"], intervalDefinition: row["interval_definition"], timezone: zone)
        if let problem = timing.violation(of: limits) { throw ScheduleTimingError(problem) }
        func time(_ column: String) throws(ScheduleTimingError) -> Date? {
            guard let text = row[column] else { return nil }
            guard let date = Timestamp.parse(text) else { throw ScheduleTimingError("\(column) \(text) cannot be read") }
            return date
        }
        let catchup = row["catchup_window"].flatMap { Int($0) }.map { max(0, $0) }
        return try ScheduleFiring.fire(
            scheduled: scheduled, timing: timing, window: ScheduleWindow(start: try time("start_at"), end: try time("end_at")),
            catchupWindow: catchup, frequency: row["frequency"].flatMap { Int($0) }, triggered: row["triggered"].flatMap { Int($0) } ?? 0,
            now: now)
    }

    /// Records that these jobs were published and confirmed by the broker, unless a worker
    /// already did (`record` sets `published_at` with the outcome): a beat marks a few
    /// seconds after the confirm, so a job delivered by then is written once less.
    public func markPublished(_ ids: [UUID]) async throws {
        guard !ids.isEmpty else { return }
        // The mark never waits for a row: one locked is being written by a worker's record
        // (which sets `published_at` itself), a cancel or another beat. So it is never part
        // of a deadlock with the workers' records, which lock rows as the update meets them.
        // A row already marked or recorded is neither locked nor written.
        try await pool.query(
            PreparedStatement(
                """
                WITH locked AS (
                    SELECT id FROM deliveries
                    WHERE id = ANY($1::uuid[]) AND published_at IS NULL AND state IN ('queued', 'cancelled')
                    FOR UPDATE SKIP LOCKED)
                UPDATE deliveries d SET published_at = now() FROM locked
                WHERE d.id = locked.id AND d.id = ANY($1::uuid[]) AND d.published_at IS NULL
                """), [PostgresArray.literal(ids.map(SQL.text))])
    }

    /// Leases up to `limit` unpublished deliveries whose lease ran out (a beat crashed
    /// between recording and publishing, or the API queued a webhook call) and returns them.
    public func leaseUnpublished(limit: Int) async throws -> [DeliveryJob] {
        let rows = try await pool.query(
            PreparedStatement(
                """
                UPDATE deliveries SET publish_after = now() + make_interval(secs => $2)
                WHERE id IN (
                    SELECT id FROM deliveries
                    WHERE published_at IS NULL AND publish_after <= now() AND state = 'queued'
                    ORDER BY publish_after LIMIT $1 FOR UPDATE SKIP LOCKED)
                RETURNING \(Self.columns)
                """), [String(limit), String(publishLease)])
        return try rows.map { try Self.delivery($0).job }
    }

    /// The earliest next run of any enabled schedule, and of any unpublished delivery.
    public func nextWake() async throws -> Date? {
        let row = try await pool.query(
            PreparedStatement(
                """
                SELECT least(
                    (SELECT min(next_send_at) FROM schedules WHERE enabled AND next_send_at IS NOT NULL),
                    (SELECT min(publish_after) FROM deliveries WHERE published_at IS NULL AND state = 'queued')) AS next
                """)
        ).first
        // A time this service cannot read (`infinity`, a year past 9999, written by hand) is
        // far ahead here: one at or before now was claimed and quarantined in the round
        // before. Nothing to wake for; throwing made beat retry its round every half second.
        return row?["next"].flatMap(Timestamp.parse)
    }

    /// How many enabled schedules are due at or before `until`, counting at most `limit`
    /// (an index range scan of at most `limit` entries): beat's measure of a burst ahead.
    public func countDue(until: Date, limit: Int) async throws -> Int {
        let row = try await pool.query(
            PreparedStatement(
                """
                SELECT count(*) AS n FROM (
                    SELECT 1 FROM schedules
                    WHERE enabled AND next_send_at IS NOT NULL AND next_send_at <= $1
                    LIMIT $2) AS due
                """), [SQL.text(until), String(max(0, limit))]
        ).first
        return try Int(row?.requiredInt64("n") ?? 0)
    }
}
