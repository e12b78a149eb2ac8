import Foundation
import Postgres
import SchedulerCore

/// Delivery records: the outbox beat publishes from, the state workers record, and what
/// the API and operators read.
public struct DeliveryStore: Sendable {
    let pool: PostgresPool
    /// Seconds a claimed but unpublished job waits before a beat publishes it again (it
    /// must be longer than publishing a batch takes).
    let publishLease: Int

    /// The bounds beat checks a stored schedule against before it fires it.
    let limits: ScheduleLimits

    public init(pool: PostgresPool, publishLease: Int = 60, limits: ScheduleLimits = .standard) {
        self.pool = pool
        self.publishLease = publishLease
        self.limits = limits
    }

    /// Deliveries published and not finished: in a queue, or in a worker's hands. A beat marks
    /// what it published a few seconds late (see `markPublished`): until then a job whose
    /// lease is running counts as published.
    public func inProgressCount() async throws -> Int {
        let row = try await pool.query(
            """
            SELECT count(*) FROM deliveries
            WHERE (published_at IS NOT NULL OR publish_after > now()) AND state IN ('queued', 'retrying') AND finished_at IS NULL
            """
        ).first
        return row?[0].flatMap { Int($0) } ?? 0
    }

    static let columns = """
        id, schedule_id, kind, scheduled_for, state, attempts, last_status, last_error, latency_ms,
        created_at, published_at, finished_at
        """

    // MARK: Beat

    /// What a claim found: the jobs to publish, and the schedules it disabled because their
    /// next run could not be computed (with the reason, also stored on the schedule).
    public struct Claim: Sendable {
        public var jobs: [DeliveryJob] = []
        public var quarantined: [(id: UUID, reason: String)] = []
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
                    SELECT id, cron_definition, interval_definition, timezone, next_send_at::text AS next_send_at, frequency, triggered
                    FROM schedules
                    WHERE enabled AND next_send_at IS NOT NULL AND next_send_at <= $1
                    ORDER BY next_send_at, fair_slot
                    LIMIT $2
                    FOR UPDATE SKIP LOCKED
                    """), [SQL.text(now.addingTimeInterval(max(0, lookahead))), String(limit)])
            guard due.count > 0 else { return Claim() }
            var claim = Claim()
            var advanced: [UUID] = []
            var nextRuns: [String?] = []
            var stillEnabled: [String?] = []
            var triggeredCounts: [String?] = []
            for row in due {
                // The id is the primary key: a row without a readable one cannot be selected.
                guard let id = try? row.uuid("id") else { continue }
                do {
                    let fired = try Self.fire(row, now: now, limits: limits)
                    claim.jobs.append(
                        DeliveryJob(
                            deliveryID: DeliveryID.derive(scheduleID: id, scheduledFor: fired.scheduled), scheduleID: id,
                            scheduledFor: fired.scheduled, kind: .schedule))
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
                        UPDATE schedules s SET enabled = false, disabled_reason = u.reason
                        FROM unnest($1::uuid[], $2::text[]) AS u(id, reason)
                        WHERE s.id = u.id
                        """),
                    [
                        PostgresArray.literal(claim.quarantined.map { SQL.text($0.id) }),
                        PostgresArray.literal(claim.quarantined.map { $0.reason }),
                    ])
            }
            guard !claim.jobs.isEmpty else { return claim }
            let ids = PostgresArray.literal(advanced.map(SQL.text))
            try await connection.query(
                PreparedStatement(
                    """
                    UPDATE schedules s SET next_send_at = u.next, triggered = u.triggered, enabled = u.enabled
                    FROM unnest($1::uuid[], $2::timestamptz[], $3::boolean[], $4::int[]) AS u(id, next, enabled, triggered)
                    WHERE s.id = u.id
                    """),
                [ids, PostgresArray.literal(nextRuns), PostgresArray.literal(stillEnabled), PostgresArray.literal(triggeredCounts)])
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
                    PostgresArray.literal(claim.jobs.map { SQL.text($0.deliveryID) }), ids,
                    PostgresArray.literal(claim.jobs.map { SQL.text($0.scheduledFor) }),
                    PostgresArray.literal(claim.jobs.map(\.routingKey)), String(publishLease),
                ])
            let fresh = Set(try inserted.map { try $0.uuid("id") })
            claim.jobs = claim.jobs.filter { fresh.contains($0.deliveryID) }
            return claim
        }
    }

    /// One due schedule fired at `now`: its occurrence, its next run, whether it stays
    /// enabled, and its new run count; or why it cannot be fired.
    static func fire(
        _ row: PostgresRow, now: Date, limits: ScheduleLimits
    ) throws(ScheduleTimingError) -> (scheduled: Date, next: Date?, enabled: Bool, triggered: Int) {
        guard let text = row["next_send_at"], let scheduled = Timestamp.parse(text) else {
            throw ScheduleTimingError("next_send_at \(row["next_send_at"] ?? "NULL") cannot be read")
        }
        guard let zone = row["timezone"] else { throw ScheduleTimingError("timezone is NULL") }
        let timing = try ScheduleTiming.stored(
            cronDefinition: row["cron_definition"], intervalDefinition: row["interval_definition"], timezone: zone)
        if let problem = timing.violation(of: limits) { throw ScheduleTimingError(problem) }
        // Both integer columns: at most 2^31 - 1, and the count stays there.
        let triggered = min((row["triggered"].flatMap { Int($0) } ?? 0), Int(Int32.max) - 1) + 1
        let exhausted = row["frequency"].flatMap { Int($0) }.map { triggered >= $0 } ?? false
        // A next run is always after `now` (nextRun throws when it would not be).
        let next = exhausted ? nil : try timing.nextRun(afterFiring: scheduled, now: now)
        return (scheduled, next, !exhausted, triggered)
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

    // MARK: Worker

    /// What a worker needs to POST a delivery: where, what, and whether it is still wanted.
    public struct Target: Sendable, Equatable {
        public let state: Delivery.State
        public let attempts: Int
        public let endpoint: String?
        /// The payload as JSON; empty when it is larger than the lookup's limit (see `bodyBytes`).
        public let body: String
        /// The payload's size in bytes, even when it was too large to read.
        public let bodyBytes: Int
        public let authToken: String?

        public init(state: Delivery.State, attempts: Int, endpoint: String?, body: String, bodyBytes: Int, authToken: String?) {
            self.state = state
            self.attempts = attempts
            self.endpoint = endpoint
            self.body = body
            self.bodyBytes = bodyBytes
            self.authToken = authToken
        }
    }

    /// One lookup by primary key per id, whatever the tables' statistics say: written as a
    /// join (`id = ANY($1)`), its plan, once PostgreSQL settled on a generic one while the
    /// week's partition or `schedules` was nearly empty (a new week, a new install, the
    /// bench's phases), scanned both tables whole on every read until the next ANALYZE:
    /// 36-46 ms per read of about 500 ids in 30 s of 1,000 a second, against 1-2 ms. A
    /// `LIMIT` keeps each lateral subquery a lookup the planner cannot turn into a hash join.
    static let targetsStatement = PreparedStatement(
        """
        SELECT id, state, attempts, endpoint, auth_token, octet_length(body) AS body_bytes,
               CASE WHEN octet_length(body) <= $2 THEN body END AS body
        FROM (
            SELECT d.id, d.state, d.attempts,
                   CASE WHEN d.kind = 'webhook' THEN d.target ELSE s.endpoint END AS endpoint,
                   CASE WHEN d.kind = 'webhook' THEN d.body::text ELSE s.payload::text END AS body,
                   CASE WHEN d.kind = 'webhook' THEN d.auth_token ELSE s.auth_token END AS auth_token
            FROM unnest($1::uuid[]) AS u(id)
            CROSS JOIN LATERAL (
                SELECT id, state, attempts, kind, target, body, auth_token, schedule_id FROM deliveries WHERE id = u.id LIMIT 1) AS d
            LEFT JOIN LATERAL (SELECT endpoint, payload, auth_token FROM schedules WHERE id = d.schedule_id LIMIT 1) AS s ON true
            ) AS t
        """)

    /// The server settings of the worker's connections: no sequential scan where an index
    /// would do (`enable_seqscan = off`; one is still used where no index can serve). Every
    /// statement a worker runs looks rows up by key, but the record's plan (a join on ids) is
    /// made generic once and kept: made while a week's partition was still empty (the week
    /// before it began), it scanned that partition whole on every record once the week had
    /// begun, until autovacuum analyzed it; with autovacuum busy elsewhere, all week, on a
    /// table growing by every delivery.
    public static let workerSettings = ["enable_seqscan": "off"]

    /// Readies every connection of the pool for `targets` before the first job needs it: each
    /// prepares the statement and reads, twice, an id of this moment that no delivery has,
    /// which loads the server's caches of this week's partition. On a new connection the
    /// first reads took 2-3 ms (measured); once warm, a tenth of a millisecond, which at a due
    /// instant is most of the time between the due time and the POST. The worker calls it
    /// when it starts, and again shortly before a held job's due time (`DeliveryLoop.warmAhead`).
    public func warmReads() async {
        await pool.warm { connection in
            for _ in 0..<2 {
                _ = try await connection.query(Self.targetsStatement, [PostgresArray.literal([SQL.text(DeliveryID.fresh())]), "0"])
            }
        }
    }

    /// The targets of these deliveries; a delivery with no row is not in the result.
    /// Payloads larger than `maximumBodyBytes` are not read (only their size), so a
    /// worker holds at most its prefetch times that in payloads.
    public func targets(_ ids: [UUID], maximumBodyBytes: Int = ScheduleLimits.standard.maximumPayloadBytes) async throws -> [UUID: Target] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await pool.query(Self.targetsStatement, [PostgresArray.literal(ids.map(SQL.text)), String(maximumBodyBytes)])
        var targets: [UUID: Target] = [:]
        for row in rows {
            // A row that does not read is left out: its job is dead-lettered as having no record.
            guard let id = try? row.uuid("id"), let state = row["state"].flatMap(Delivery.State.init(rawValue:)) else { continue }
            targets[id] = Target(
                state: state, attempts: row["attempts"].flatMap { Int($0) } ?? 0, endpoint: row["endpoint"],
                body: row["body"] ?? "{}", bodyBytes: row["body_bytes"].flatMap { Int($0) } ?? 0, authToken: row["auth_token"])
        }
        return targets
    }

    /// One attempt's result.
    public struct Attempt: Sendable {
        public let id: UUID
        public let state: Delivery.State
        public let attempts: Int
        public let status: Int?
        public let error: String?
        public let latencyMilliseconds: Double?
        /// From the due time to the first POST (first attempts only).
        public let latenessMilliseconds: Double?

        public init(
            id: UUID, state: Delivery.State, attempts: Int, status: Int?, error: String?, latencyMilliseconds: Double?,
            latenessMilliseconds: Double? = nil
        ) {
            self.id = id
            self.state = state
            self.attempts = attempts
            self.status = status
            self.error = error
            self.latencyMilliseconds = latencyMilliseconds
            self.latenessMilliseconds = latenessMilliseconds
        }
    }

    /// `record`'s statement. Its generic plan looks the ids up in each partition's primary key
    /// (`d.id = ANY($1)`) on the worker's connections (`workerSettings`), also when it was made
    /// while a partition was empty.
    static let recordStatement = PreparedStatement(
        """
        UPDATE deliveries d SET state = u.state, attempts = greatest(d.attempts, u.attempts),
            last_status = u.status, last_error = u.error, latency_ms = u.latency, updated_at = now(),
            lateness_ms = coalesce(d.lateness_ms, u.lateness), published_at = coalesce(d.published_at, now()),
            finished_at = CASE WHEN u.state IN ('delivered', 'dead', 'cancelled') THEN now() ELSE d.finished_at END
        FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::text[], $6::float8[], $7::float8[])
            AS u(id, state, attempts, status, error, latency, lateness)
        WHERE d.id = u.id AND d.id = ANY($1::uuid[]) AND d.state NOT IN ('delivered', 'cancelled', 'purged')
        """)

    /// Writes many attempts' results in one statement. A delivery already delivered or
    /// cancelled keeps that state (checked again on the row's newest version when a
    /// concurrent writer went first).
    ///
    /// The rows are not locked in id order first, as the other multi-row updates of
    /// deliveries do: that pass cost a third of this statement, the most frequent write of
    /// all. A beat's mark never waits for a row (`markPublished`), so what could still
    /// deadlock with a record is a cancel or a re-drive touching two of the same rows at the
    /// same moment, or a second copy's record; PostgreSQL then aborts one of them, and it is
    /// run again: the worker records again (`settleRetryDelay`), a transaction is run again by
    /// `PostgresPool.withTransaction`. Sorting the batch by id makes that rarer.
    public func record(_ attempts: [Attempt]) async throws {
        guard !attempts.isEmpty else { return }
        let attempts = attempts.sorted { $0.id < $1.id }
        try await pool.query(
            Self.recordStatement,
            [
                PostgresArray.literal(attempts.map { SQL.text($0.id) }),
                PostgresArray.literal(attempts.map(\.state.rawValue)),
                PostgresArray.literal(attempts.map { String($0.attempts) }),
                PostgresArray.literal(attempts.map { $0.status.map { String($0) } }),
                PostgresArray.literal(attempts.map(\.error)),
                PostgresArray.literal(attempts.map { $0.latencyMilliseconds.map { String($0) } }),
                PostgresArray.literal(attempts.map { $0.latenessMilliseconds.flatMap { $0.isFinite ? String($0) : nil } }),
            ])
    }

    /// A schedule paused because its failures would otherwise pile up.
    public struct Paused: Sendable, Equatable {
        public enum Why: String, Sendable {
            /// Its last `afterFailures` occurrences failed for good.
            case failures
            /// Its owner's dead letters reached their bound.
            case deadLetters = "dead_letters"
        }

        public let scheduleID: UUID
        public let why: Why
        public let reason: String
    }

    /// After dead letters were recorded (`deadIDs`): pauses (disables, with the reason in
    /// `disabled_reason`, and cancels its queued jobs) each of their schedules whose last
    /// `afterFailures` finished occurrences all failed for good (0: never), and each whose
    /// owner holds `tenantDeadLetters` dead letters or more (0: no bound). The dead letters
    /// themselves are kept: nothing is dropped, the schedule stops adding to them.
    public func pauseFailing(deadIDs: [UUID], afterFailures: Int, tenantDeadLetters: Int) async throws -> [Paused] {
        guard !deadIDs.isEmpty, afterFailures > 0 || tenantDeadLetters > 0 else { return [] }
        let rows = try await pool.query(
            """
            WITH dead AS (
                SELECT DISTINCT d.schedule_id, s.created_by AS owner
                FROM deliveries d JOIN schedules s ON s.id = d.schedule_id
                WHERE d.id = ANY($1::uuid[]) AND d.kind = 'schedule' AND s.enabled),
            streak AS (
                SELECT dead.schedule_id FROM dead
                WHERE $2::int > 0 AND (
                    SELECT count(*) FILTER (WHERE t.state <> 'delivered') FROM (
                        SELECT x.state FROM deliveries x
                        WHERE x.schedule_id = dead.schedule_id AND x.kind = 'schedule' AND x.state IN ('delivered', 'dead', 'purged')
                        ORDER BY x.scheduled_for DESC LIMIT $2) AS t) = $2),
            owners AS (
                SELECT o.owner FROM (SELECT DISTINCT owner FROM dead WHERE owner IS NOT NULL) AS o
                WHERE $3::int > 0 AND (
                    SELECT count(*) FROM (
                        SELECT 1 FROM schedules mine JOIN deliveries x ON x.schedule_id = mine.id AND x.state = 'dead' AND x.kind = 'schedule'
                        WHERE mine.created_by = o.owner LIMIT $3) AS c) >= $3),
            chosen AS (
                SELECT schedule_id, 'failures' AS why FROM streak
                UNION ALL
                SELECT dead.schedule_id, 'dead_letters' FROM dead JOIN owners ON owners.owner = dead.owner
                WHERE dead.schedule_id NOT IN (SELECT schedule_id FROM streak)),
            paused AS (
                UPDATE schedules s SET enabled = false, updated_at = now(),
                    disabled_reason = CASE chosen.why
                        WHEN 'failures' THEN 'paused: its last ' || $2 || ' occurrences failed for good; fix the receiver, then enable it again'
                        ELSE 'paused: its owner holds ' || $3 || ' dead letters or more (DEAD_LETTERS_PER_TENANT); re-drive or purge them, then enable it again'
                    END
                FROM chosen WHERE s.id = chosen.schedule_id AND s.enabled
                RETURNING s.id, chosen.why, s.disabled_reason),
            cancelled AS (
                UPDATE deliveries d SET state = 'cancelled', finished_at = now(), updated_at = now()
                FROM paused WHERE d.schedule_id = paused.id AND d.kind = 'schedule' AND d.state IN ('queued', 'retrying'))
            SELECT id, why, disabled_reason FROM paused
            """, [PostgresArray.literal(deadIDs.map(SQL.text)), String(afterFailures), String(tenantDeadLetters)])
        return try rows.map {
            Paused(
                scheduleID: try $0.uuid("id"), why: Paused.Why(rawValue: try $0.requiredString("why")) ?? .failures,
                reason: try $0.requiredString("disabled_reason"))
        }
    }

    /// How many dead letters a user holds, counted up to `limit` (bounded work).
    public func deadLetterCount(owner: Int64, limit: Int) async throws -> Int {
        try await pool.query(
            """
            SELECT count(*) AS n FROM (
                SELECT 1 FROM schedules mine JOIN deliveries x ON x.schedule_id = mine.id AND x.state = 'dead' AND x.kind = 'schedule'
                WHERE mine.created_by = $1 LIMIT $2) AS c
            """, [SQL.text(owner), String(limit)]
        ).first?["n"].flatMap { Int($0) } ?? 0
    }

    // MARK: API and operators

    /// Marks a schedule's pending deliveries cancelled (it was disabled or deleted), so
    /// workers drop their queued jobs instead of POSTing them.
    public static func cancelPending(scheduleID: UUID, connection: PostgresConnection) async throws {
        try await connection.query(
            """
            WITH locked AS (
                SELECT id FROM deliveries
                WHERE schedule_id = $1 AND kind = 'schedule' AND state IN ('queued', 'retrying') ORDER BY id FOR UPDATE)
            UPDATE deliveries d SET state = 'cancelled', finished_at = now(), updated_at = now()
            FROM locked WHERE d.id = locked.id AND d.state IN ('queued', 'retrying')
            """, [SQL.text(scheduleID)])
    }

    /// Queues a webhook call (published by beat from the outbox).
    /// Queues a hook call, owned by the hook's owner (`ownerID`): its record and its dead
    /// letter are theirs, not the schedule's owner's.
    public static func queueWebhookCall(
        scheduleID: UUID, ownerID: Int64, target: String, body: JSONValue, authToken: String?, connection: PostgresConnection
    ) async throws {
        try await connection.query(
            """
            INSERT INTO deliveries (id, schedule_id, kind, scheduled_for, routing_key, target, body, auth_token, owner_id)
            VALUES ($1, $2, 'webhook', now(), $3, $4, $5, $6, $7)
            """,
            [
                SQL.text(DeliveryID.fresh()), SQL.text(scheduleID), "schedule.\(SQL.text(scheduleID))", target, body.serialized,
                authToken, SQL.text(ownerID),
            ])
    }

    /// The schedule's deliveries, with the hook calls about it that `owner` may see (nil: all;
    /// another user's hook call is theirs).
    public func deliveries(scheduleID: UUID, owner: Int64? = nil, limit: Int, offset: Int) async throws -> Page<Delivery> {
        let mine = "schedule_id = $1 AND (kind <> 'webhook' OR $2::bigint IS NULL OR owner_id = $2)"
        return try await pool.withConnection { connection in
            let count =
                try await connection.query(
                    "SELECT count(*) FROM deliveries WHERE \(mine)", [SQL.text(scheduleID), SQL.text(owner)]
                ).first?[0].flatMap { Int($0) } ?? 0
            let rows = try await connection.query(
                """
                SELECT \(Self.columns) FROM deliveries WHERE \(mine)
                ORDER BY scheduled_for DESC, created_at DESC LIMIT $3 OFFSET $4
                """, [SQL.text(scheduleID), SQL.text(owner), String(limit), String(offset)])
            return Page(items: try rows.map(Self.delivery), count: count)
        }
    }

    /// Deliveries `owner` may see (nil: any, and those of no schedule): the deliveries of the
    /// schedules they created, and the calls of their own hooks.
    static let owned = """
        ($1::bigint IS NULL OR (kind = 'webhook' AND owner_id = $1)
         OR (kind <> 'webhook' AND schedule_id IN (SELECT id FROM schedules WHERE created_by = $1)))
        """

    /// Whose a record `d` (joined to its schedule `s`) is: the hook's owner for a hook call,
    /// else the schedule's creator.
    static let ownerOf = "CASE WHEN d.kind = 'webhook' THEN d.owner_id ELSE s.created_by END"

    /// Dead deliveries `owner` may see (nil: all), most recent first.
    public func dead(owner: Int64? = nil, limit: Int, offset: Int) async throws -> Page<Delivery> {
        try await pool.withConnection { connection in
            let count =
                try await connection.query(
                    "SELECT count(*) FROM deliveries WHERE state = 'dead' AND \(Self.owned)", [SQL.text(owner)]
                ).first?[0].flatMap { Int($0) } ?? 0
            let rows = try await connection.query(
                "SELECT \(Self.columns) FROM deliveries WHERE state = 'dead' AND \(Self.owned) ORDER BY finished_at DESC, id LIMIT $2 OFFSET $3",
                [SQL.text(owner), String(limit), String(offset)])
            return Page(items: try rows.map(Self.delivery), count: count)
        }
    }

    /// The delivery with `id`, if `owner` may see it (nil: any).
    public func delivery(id: UUID, owner: Int64? = nil) async throws -> Delivery? {
        try await pool.query(
            "SELECT \(Self.columns) FROM deliveries WHERE \(Self.owned) AND id = $2", [SQL.text(owner), SQL.text(id)]
        ).first.map(Self.delivery)
    }

    /// The ids (lowercased) of the dead deliveries of schedules `owner` created.
    public func deadIDs(owner: Int64) async throws -> Set<String> {
        Set(
            try await pool.query("SELECT id FROM deliveries WHERE state = 'dead' AND \(Self.owned)", [SQL.text(owner)])
                .compactMap { $0["id"]?.lowercased() })
    }

    /// A dead delivery re-driven: queued again with fresh attempts.
    public func requeue(_ ids: [UUID]) async throws {
        guard !ids.isEmpty else { return }
        try await pool.query(
            """
            UPDATE deliveries SET state = 'queued', attempts = 0, finished_at = NULL, updated_at = now()
            WHERE id = ANY($1::uuid[]) AND state = 'dead'
            """, [PostgresArray.literal(ids.map(SQL.text))])
    }

    // MARK: Dead letters for operators

    /// Which dead letters an operator means.
    public struct DeadFilter: Sendable, Equatable {
        public enum ErrorKind: String, Sendable, CaseIterable {
            /// The receiver answered (`last_status` set).
            case http
            /// No answer in time.
            case timeout
            /// Could not connect, or the connection broke.
            case connection
        }

        public var scheduleID: UUID?
        /// A substring of the endpoint (or webhook target).
        public var endpoint: String?
        public var status: Int?
        public var errorKind: ErrorKind?
        public var since: Date?
        public var until: Date?
        /// The email of the user they belong to (their schedules' creator, or the hook's owner).
        public var owner: String?

        public init(
            scheduleID: UUID? = nil, endpoint: String? = nil, status: Int? = nil, errorKind: ErrorKind? = nil, since: Date? = nil,
            until: Date? = nil, owner: String? = nil
        ) {
            self.owner = owner
            self.scheduleID = scheduleID
            self.endpoint = endpoint
            self.status = status
            self.errorKind = errorKind
            self.since = since
            self.until = until
        }
    }

    /// A dead delivery with where it was going.
    public struct DeadLetter: Sendable {
        public let delivery: Delivery
        public let endpoint: String?
        /// The email of its owner: the schedule's creator, or the hook's owner (nil: none).
        public let owner: String?
    }

    /// Dead deliveries matching `filter`, most recent failure first.
    public func deadLetters(_ filter: DeadFilter, limit: Int = 100_000) async throws -> [DeadLetter] {
        let rows = try await pool.query(
            """
            SELECT d.id, d.schedule_id, d.kind, d.scheduled_for, d.state, d.attempts, d.last_status, d.last_error,
                   d.latency_ms, d.created_at, d.published_at, d.finished_at,
                   CASE WHEN d.kind = 'webhook' THEN d.target ELSE s.endpoint END AS endpoint, u.email AS owner
            FROM deliveries d LEFT JOIN schedules s ON s.id = d.schedule_id LEFT JOIN auth_user u ON u.id = \(Self.ownerOf)
            \(Self.deadWhere)
            ORDER BY d.finished_at DESC, d.id
            LIMIT $8
            """,
            [
                filter.scheduleID.map(SQL.text), filter.endpoint, SQL.text(filter.status), filter.errorKind?.rawValue,
                SQL.text(filter.since), SQL.text(filter.until), filter.owner, String(limit),
            ])
        return try rows.map { DeadLetter(delivery: try Self.delivery($0), endpoint: $0["endpoint"], owner: $0["owner"]) }
    }

    /// The conditions of `deadLetters` and `countDeadLetters` ($1-$7: the filter's).
    static let deadWhere = """
        WHERE d.state = 'dead'
          AND ($1::uuid IS NULL OR d.schedule_id = $1)
          AND ($2::text IS NULL OR strpos(CASE WHEN d.kind = 'webhook' THEN d.target ELSE s.endpoint END, $2) > 0)
          AND ($3::int IS NULL OR d.last_status = $3)
          AND ($4::text IS NULL
               OR ($4 = 'http' AND d.last_status IS NOT NULL)
               OR ($4 = 'timeout' AND d.last_status IS NULL AND d.last_error ILIKE '%time%out%')
               OR ($4 = 'connection' AND d.last_status IS NULL AND d.last_error NOT ILIKE '%time%out%'))
          AND ($5::timestamptz IS NULL OR d.finished_at >= $5)
          AND ($6::timestamptz IS NULL OR d.finished_at < $6)
          AND ($7::text IS NULL OR lower(u.email) = lower($7))
        """

    /// How many dead deliveries match `filter`.
    public func countDeadLetters(_ filter: DeadFilter) async throws -> Int {
        let rows = try await pool.query(
            """
            SELECT count(*)
            FROM deliveries d LEFT JOIN schedules s ON s.id = d.schedule_id LEFT JOIN auth_user u ON u.id = \(Self.ownerOf)
            \(Self.deadWhere)
            """,
            [
                filter.scheduleID.map(SQL.text), filter.endpoint, SQL.text(filter.status), filter.errorKind?.rawValue,
                SQL.text(filter.since), SQL.text(filter.until), filter.owner,
            ])
        return rows.first?[0].flatMap { Int($0) } ?? 0
    }

    /// Marks dead deliveries purged (their dead letters were dropped).
    public func markPurged(_ ids: [UUID]) async throws {
        guard !ids.isEmpty else { return }
        try await pool.query(
            """
            UPDATE deliveries SET state = 'purged', updated_at = now()
            WHERE id = ANY($1::uuid[]) AND state = 'dead'
            """, [PostgresArray.literal(ids.map(SQL.text))])
    }

    static func delivery(_ row: PostgresRow) throws -> Delivery {
        Delivery(
            id: try row.uuid("id"), scheduleID: row["schedule_id"].flatMap({ UUID(text: $0) }),
            kind: DeliveryJob.Kind(rawValue: try row.requiredString("kind")) ?? .schedule,
            scheduledFor: try row.requiredDate("scheduled_for"),
            state: Delivery.State(rawValue: try row.requiredString("state")) ?? .queued,
            attempts: Int(try row.requiredInt64("attempts")), lastStatus: try row.int64("last_status").map { Int($0) },
            lastError: row["last_error"], latencyMilliseconds: row["latency_ms"].flatMap(Double.init),
            createdAt: try row.requiredDate("created_at"), publishedAt: try row.date("published_at"),
            finishedAt: try row.date("finished_at"))
    }
}
