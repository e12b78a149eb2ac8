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
        /// Occurrences recorded as skipped (due while the previous one was still being delivered).
        public var skipped: [DeliveryJob] = []
        /// Occurrences recorded to wait behind the previous one (`buffer_one`), not published now.
        public var buffered: [DeliveryJob] = []
        /// How many due schedules the claim took (a full batch: there may be more).
        public var claimed = 0
    }

    /// Beat's claim: due schedules in the order of their instant and fair slot, `$2` at most,
    /// skipping rows another beat holds. The order names the column (`schedules.next_send_at`):
    /// the bare name would be the output's text of it, sorted in memory or on disk after a
    /// scan of the whole table, where the column is read in order from `schedules_due_fair`.
    static let claimStatement = PreparedStatement(
        """
        SELECT id, cron_definition, interval_definition, timezone, next_send_at::text AS next_send_at, frequency, triggered,
               start_at::text AS start_at, end_at::text AS end_at, catchup_window, jitter, dst_gap, dst_overlap,
               overlap,
               -- Its occurrences due and not done yet, counted only where the policy
               -- asks (lookups in small partial indexes, at most two rows each). One
               -- not due yet (held, claimed ahead) is not running: it does not count.
               CASE WHEN overlap = 'allow' THEN 0 ELSE (SELECT count(*) FROM (
                   SELECT 1 FROM deliveries d WHERE d.schedule_id = schedules.id AND d.state IN ('queued', 'retrying')
                   AND d.kind = 'schedule' AND d.scheduled_for <= $3 LIMIT 2) AS p) END AS in_flight,
               CASE WHEN overlap = 'allow' THEN 0 ELSE (SELECT count(*) FROM (
                   SELECT 1 FROM deliveries d WHERE d.schedule_id = schedules.id AND d.state = 'buffered' LIMIT 1) AS b) END
                   AS buffered
        FROM schedules
        WHERE enabled AND next_send_at IS NOT NULL AND next_send_at <= $1
        ORDER BY schedules.next_send_at, fair_slot
        LIMIT $2
        FOR UPDATE SKIP LOCKED
        """)

    /// The claim's transaction: beat's own writes (the triggers that tell of others' changes
    /// leave them out), and joins by key only: the rows claimed are advanced through the
    /// primary key (a nested loop), not by hashing the whole table, which PostgreSQL chose for
    /// 2,000 rows of 50,000 (17-20 ms of the update's 50, measured), and which grows with the
    /// table, not the claim.
    static let claimSettings = "SET LOCAL scheduler.beat = 'on'; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"

    /// Advances the claimed schedules: their next run, fire count and whether they go on.
    static let advanceStatement = PreparedStatement(
        """
        UPDATE schedules s SET next_send_at = u.next, triggered = u.triggered, enabled = u.enabled
        FROM unnest($1::uuid[], $2::timestamptz[], $3::boolean[], $4::int[]) AS u(id, next, enabled, triggered)
        WHERE s.id = u.id
        """)

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
            try await connection.execute(Self.claimSettings)
            let due = try await connection.query(
                Self.claimStatement, [SQL.text(now.addingTimeInterval(max(0, lookahead))), String(limit), SQL.text(now)])
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
                    if let due = fired.send {
                        // The id is the occurrence's; with jitter it is sent, and its lateness
                        // measured, from the offset instant its id gives.
                        let deliveryID = DeliveryID.derive(scheduleID: id, scheduledFor: due)
                        let jitter = row["jitter"].flatMap { Int($0) } ?? 0
                        let scheduled = due.addingTimeInterval(ScheduleJitter.offset(deliveryID: deliveryID, jitterSeconds: jitter))
                        let job = DeliveryJob(deliveryID: deliveryID, scheduleID: id, scheduledFor: scheduled, kind: .schedule)
                        if fired.buffered { claim.buffered.append(job) } else { claim.jobs.append(job) }
                    }
                    if let scheduled = fired.skipped {
                        claim.skipped.append(
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
                let paused = try await connection.query(
                    PreparedStatement(
                        """
                        WITH quarantined AS (
                            UPDATE schedules s SET enabled = false, disabled_reason = u.reason,
                                paused_at = now(), paused_by = NULL, paused_note = NULL
                            FROM unnest($1::uuid[], $2::text[]) AS u(id, reason)
                            WHERE s.id = u.id
                            RETURNING s.id, s.created_by, s.paused_at, u.reason),
                        logged AS (
                            INSERT INTO schedule_history (schedule_id, owner_id, actor_id, action, changes)
                            SELECT id, created_by, NULL, 'paused', json_build_object(
                                'enabled', json_build_object('from', true, 'to', false),
                                'disabled_reason', json_build_object('from', NULL, 'to', reason))
                            FROM quarantined)
                        SELECT id, created_by, paused_at, reason FROM quarantined
                        """),
                    [
                        PostgresArray.literal(claim.quarantined.map { SQL.text($0.id) }),
                        PostgresArray.literal(claim.quarantined.map { $0.reason }),
                    ])
                let news = try paused.map { row in
                    let id = try row.uuid("id")
                    return HookCalls.News(
                        owner: try row.int64("created_by"), scheduleID: id,
                        data: HookCalls.paused(
                            scheduleID: id, by: nil, at: try row.date("paused_at") ?? now, note: nil, cause: .invalidDefinition,
                            reason: row["reason"]))
                }
                try await HookCalls.queue(.schedulePaused, news, hookToken: hookAuthToken, connection: connection)
            }
            guard !advanced.isEmpty else { return claim }
            let ids = PostgresArray.literal(advanced.map(SQL.text))
            try await connection.query(
                Self.advanceStatement,
                [ids, PostgresArray.literal(nextRuns), PostgresArray.literal(stillEnabled), PostgresArray.literal(triggeredCounts)])
            // Missed and skipped occurrences are recorded as finished and never published;
            // buffered ones wait (beat releases each once its schedule has nothing in flight).
            // An infinite publish time keeps all three out of the unpublished index's range.
            let held: [(jobs: [DeliveryJob], state: String, reason: String?)] = [
                (claim.missed, "missed", "found after its catch-up window (beat was not running)"),
                (claim.skipped, "skipped", "the previous occurrence was still being delivered (overlap skip)"),
                (claim.buffered, "buffered", nil),
            ]
            for (jobs, state, reason) in held where !jobs.isEmpty {
                try await connection.query(
                    PreparedStatement(
                        """
                        INSERT INTO deliveries (id, schedule_id, kind, scheduled_for, routing_key, state, publish_after, finished_at, last_error)
                        SELECT u.id, u.schedule_id, 'schedule', u.scheduled_for, u.routing_key, $5, 'infinity',
                               CASE WHEN $6::text IS NULL THEN NULL ELSE now() END,
                               $5 || ': due ' || to_char(u.scheduled_for AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ', ' || $6
                        FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[]) AS u(id, schedule_id, scheduled_for, routing_key)
                        ON CONFLICT (id) DO NOTHING
                        """),
                    [
                        PostgresArray.literal(jobs.map { SQL.text($0.deliveryID) }),
                        PostgresArray.literal(jobs.map { $0.scheduleID.map(SQL.text) }),
                        PostgresArray.literal(jobs.map { SQL.text($0.scheduledFor) }),
                        PostgresArray.literal(jobs.map(\.routingKey)), state, reason,
                    ])
            }
            guard !claim.jobs.isEmpty else { return claim }
            // A job jittered past the lookahead is recorded, not published now: its record's
            // publish time is its instant less the lookahead, when beat takes it as it takes
            // any unpublished record (a worker never holds it long).
            let reach = now.addingTimeInterval(max(1, lookahead))
            let later = Set(claim.jobs.filter { $0.scheduledFor > reach }.map(\.deliveryID))
            let inserted = try await connection.query(
                PreparedStatement(
                    """
                    INSERT INTO deliveries (id, schedule_id, kind, scheduled_for, routing_key, publish_after)
                    SELECT u.id, u.schedule_id, 'schedule', u.scheduled_for, u.routing_key,
                           coalesce(u.publish_after, now() + make_interval(secs => $5))
                    FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $6::timestamptz[])
                        AS u(id, schedule_id, scheduled_for, routing_key, publish_after)
                    ON CONFLICT (id) DO NOTHING
                    RETURNING id
                    """),
                [
                    PostgresArray.literal(claim.jobs.map { SQL.text($0.deliveryID) }),
                    PostgresArray.literal(claim.jobs.map { $0.scheduleID.map(SQL.text) }),
                    PostgresArray.literal(claim.jobs.map { SQL.text($0.scheduledFor) }),
                    PostgresArray.literal(claim.jobs.map(\.routingKey)), String(publishLease),
                    PostgresArray.literal(
                        claim.jobs.map {
                            later.contains($0.deliveryID) ? SQL.text($0.scheduledFor.addingTimeInterval(-max(0, lookahead))) : nil
                        }),
                ])
            let fresh = Set(try inserted.map { try $0.uuid("id") })
            claim.jobs = claim.jobs.filter { fresh.contains($0.deliveryID) && !later.contains($0.deliveryID) }
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
            cronDefinition: row["cron_definition"], intervalDefinition: row["interval_definition"], timezone: zone,
            daylightSaving: daylightSaving(row))
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
            now: now, overlap: row["overlap"].flatMap(OverlapPolicy.init(rawValue:)) ?? .allow,
            inFlight: ScheduleFiring.InFlight(
                pending: row["in_flight"].flatMap { Int($0) } ?? 0, buffered: row["buffered"].flatMap { Int($0) } ?? 0))
    }

    /// Releases the buffered occurrences (`buffer_one`) whose schedule has nothing in flight
    /// any more: each becomes a queued record, published like any other; returns how many.
    @discardableResult
    public func releaseBuffered() async throws -> Int {
        try await pool.query(
            PreparedStatement(
                """
                UPDATE deliveries b SET state = 'queued', publish_after = now(), updated_at = now()
                WHERE b.state = 'buffered' AND NOT EXISTS (
                    SELECT 1 FROM deliveries p
                    WHERE p.schedule_id = b.schedule_id AND p.state IN ('queued', 'retrying') AND p.kind = 'schedule')
                """)
        ).affectedRows
    }

    static let nextWakeStatement = PreparedStatement(
        """
        SELECT (SELECT min(next_send_at) FROM schedules WHERE enabled AND next_send_at IS NOT NULL) AS due,
               (SELECT min(publish_after) FROM deliveries WHERE published_at IS NULL AND state = 'queued') AS publish
        """)

    static let nextWakeWatchingBuffered = PreparedStatement(
        """
        SELECT (SELECT min(next_send_at) FROM schedules WHERE enabled AND next_send_at IS NOT NULL) AS due,
               least(
                   (SELECT min(publish_after) FROM deliveries WHERE published_at IS NULL AND state = 'queued'),
                   (SELECT now() + interval '1 second' FROM deliveries WHERE state = 'buffered' LIMIT 1)) AS publish
        """)

    /// Whether any occurrence waits behind its schedule's previous one.
    public func anyBuffered() async throws -> Bool {
        try await pool.query(PreparedStatement("SELECT EXISTS (SELECT 1 FROM deliveries WHERE state = 'buffered') AS any")).first?["any"]
            == "t"
    }

    /// A row's daylight-saving choices; the original's rules where a value does not read.
    static func daylightSaving(_ row: PostgresRow) -> DaylightSaving {
        DaylightSaving(
            gap: row["dst_gap"].flatMap(DaylightSaving.Gap.init(rawValue:)) ?? .skip,
            overlap: row["dst_overlap"].flatMap(DaylightSaving.Overlap.init(rawValue:)) ?? .first)
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

    /// When beat has work next: the earliest next run of any enabled schedule (`due`: claimed
    /// ahead of it), and the earliest time a recorded delivery is to be published (`publish`:
    /// taken at that time, not ahead); with `watchBuffered`, a second from now while an
    /// occurrence waits behind its schedule's previous one.
    public func nextWake(watchBuffered: Bool = true) async throws -> (due: Date?, publish: Date?) {
        let row = try await pool.query(watchBuffered ? Self.nextWakeWatchingBuffered : Self.nextWakeStatement).first
        // A time this service cannot read (`infinity`, a year past 9999, written by hand) is
        // far ahead here: one at or before now was claimed and quarantined in the round
        // before. Nothing to wake for; throwing made beat retry its round every half second.
        return (row?["due"].flatMap(Timestamp.parse), row?["publish"].flatMap(Timestamp.parse))
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
