import Foundation
import Postgres
import SchedulerCore

/// The worker's side: reading a job's target when it is due, recording outcomes, and
/// pausing schedules whose failures would pile up.
extension DeliveryStore {
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
    ///
    /// And no JIT compilation (`jit = off`): with sequential scans priced out, a statement that
    /// still needs one (the receivers' sync reads small tables whole) costs more than
    /// `jit_above_cost`, and PostgreSQL compiled it on every run: 130 ms of CPU for a
    /// statement that runs in a tenth of a millisecond, every 2 s, measured.
    ///
    /// And every prepared statement planned once (`plan_cache_mode = force_generic_plan`): the
    /// record of a burst's outcomes binds tens of thousands of ids, and PostgreSQL planned each
    /// such call for the ids in hand (a custom plan) while deciding whether a generic one would
    /// do: 70 ms of planning a call, a fifth of the statement's time in a burst of 50,000
    /// (measured). Every statement a worker prepares is a lookup by key, whatever it binds.
    public static let workerSettings = ["enable_seqscan": "off", "jit": "off", "plan_cache_mode": "force_generic_plan"]

    /// Readies every connection of the pool for `targets` before the first job needs it: each
    /// prepares the statement and reads, twice, an id of this moment that no delivery has,
    /// which loads the server's caches of this week's partition. On a new connection the
    /// first reads took 2-3 ms (measured); once warm, a tenth of a millisecond, which at a due
    /// instant is most of the time between the due time and the POST. The worker calls it
    /// when it starts, and again shortly before a held job's due time (`HoldTimers.warmAhead`).
    public func warmReads() async {
        await pool.warm { connection in
            for _ in 0..<2 {
                _ = try await connection.query(Self.targetsStatement, [PostgresArray.literal([SQL.text(DeliveryID.fresh())]), "0"])
            }
        }
    }

    /// The channel on which every change of a schedule by anything but beat is told, with the
    /// schedule's id (migration 0020): targets a worker read ahead for it are stale.
    public static let targetsChannel = "scheduler_targets"

    /// Sends `id` on `targetsChannel`, for a worker to check that its LISTEN hears what is sent.
    public func notifyTargets(_ id: UUID) async throws {
        _ = try await pool.query("SELECT pg_notify($1, $2)", [Self.targetsChannel, id.lowercasedText])
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
        WHERE d.id = u.id AND d.id = ANY($1::uuid[]) AND d.state NOT IN ('delivered', 'cancelled', 'purged', 'missed', 'skipped')
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
    ///
    /// A batch with dead letters is recorded in a transaction that also tells the
    /// `delivery.failed` hooks of each occurrence that dies now (not of one recorded dead
    /// before: a job redelivered after its record is told of once).
    public func record(_ attempts: [Attempt]) async throws {
        guard !attempts.isEmpty else { return }
        let attempts = attempts.sorted { $0.id < $1.id }
        let parameters = [
            PostgresArray.literal(attempts.map { SQL.text($0.id) }),
            PostgresArray.literal(attempts.map(\.state.rawValue)),
            PostgresArray.literal(attempts.map { String($0.attempts) }),
            PostgresArray.literal(attempts.map { $0.status.map { String($0) } }),
            PostgresArray.literal(attempts.map(\.error)),
            PostgresArray.literal(attempts.map { $0.latencyMilliseconds.map { String($0) } }),
            PostgresArray.literal(attempts.map { $0.latenessMilliseconds.flatMap { $0.isFinite ? String($0) : nil } }),
        ]
        let dead = attempts.filter { $0.state == .dead }
        guard !dead.isEmpty else {
            try await pool.query(Self.recordStatement, parameters)
            return
        }
        let hookToken = hookAuthToken
        try await pool.withTransaction { connection in
            // Occurrences (not hook calls) dying now, locked so that a second copy's record
            // waits and then finds them dead; read only when some hook listens.
            let dying = try await connection.query(
                """
                SELECT d.id, d.schedule_id, d.scheduled_for, d.origin, s.created_by
                FROM deliveries d JOIN schedules s ON s.id = d.schedule_id
                WHERE d.id = ANY($1::uuid[]) AND d.kind = 'schedule' AND d.state IN ('queued', 'retrying')
                    AND EXISTS (SELECT 1 FROM webhooks WHERE event = $2)
                ORDER BY d.id FOR UPDATE OF d
                """, [PostgresArray.literal(dead.map { SQL.text($0.id) }), HookEvent.deliveryFailed.rawValue])
            try await connection.query(Self.recordStatement, parameters)
            let byID = Dictionary(dead.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
            let news = try dying.compactMap { row -> HookCalls.News? in
                guard let attempt = byID[try row.uuid("id")] else { return nil }
                return HookCalls.News(
                    owner: try row.int64("created_by"), scheduleID: try row.uuid("schedule_id"),
                    data: .object([
                        "delivery_id": .string(attempt.id.lowercasedText),
                        "schedule_id": .string(try row.uuid("schedule_id").lowercasedText),
                        "scheduled_for": .string(Timestamp.format(try row.requiredDate("scheduled_for"))),
                        "origin": .string(row["origin"] ?? DeliveryJob.Origin.scheduled.rawValue),
                        "attempts": .number(String(attempt.attempts)),
                        "last_status": attempt.status.map { .number(String($0)) } ?? .null,
                        "reason": attempt.error.map(JSONValue.string) ?? .null,
                    ]))
            }
            try await HookCalls.queue(.deliveryFailed, news, hookToken: hookToken, connection: connection)
        }
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
    /// Each pause is told to the `schedule.paused` hooks in the same transaction.
    public func pauseFailing(deadIDs: [UUID], afterFailures: Int, tenantDeadLetters: Int) async throws -> [Paused] {
        guard !deadIDs.isEmpty, afterFailures > 0 || tenantDeadLetters > 0 else { return [] }
        let hookToken = hookAuthToken
        return try await pool.withTransaction { connection in
            let rows = try await connection.query(
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
                    UPDATE schedules s SET enabled = false, updated_at = now(), paused_at = now(), paused_by = NULL, paused_note = NULL,
                        disabled_reason = CASE chosen.why
                            WHEN 'failures' THEN 'paused: its last ' || $2 || ' occurrences failed for good; fix the receiver, then enable it again'
                            ELSE 'paused: its owner holds ' || $3 || ' dead letters or more (DEAD_LETTERS_PER_TENANT); re-drive or purge them, then enable it again'
                        END
                    FROM chosen WHERE s.id = chosen.schedule_id AND s.enabled
                    RETURNING s.id, chosen.why, s.disabled_reason, s.created_by, s.paused_at),
                logged AS (
                    INSERT INTO schedule_history (schedule_id, owner_id, actor_id, action, changes)
                    SELECT id, created_by, NULL, 'paused', json_build_object(
                        'enabled', json_build_object('from', true, 'to', false),
                        'disabled_reason', json_build_object('from', NULL, 'to', disabled_reason))
                    FROM paused),
                cancelled AS (
                    UPDATE deliveries d SET state = 'cancelled', finished_at = now(), updated_at = now()
                    FROM paused WHERE d.schedule_id = paused.id AND d.kind = 'schedule' AND d.state IN ('queued', 'retrying'))
                SELECT id, why, disabled_reason, created_by, paused_at FROM paused
                """, [PostgresArray.literal(deadIDs.map(SQL.text)), String(afterFailures), String(tenantDeadLetters)])
            let paused = try rows.map {
                Paused(
                    scheduleID: try $0.uuid("id"), why: Paused.Why(rawValue: try $0.requiredString("why")) ?? .failures,
                    reason: try $0.requiredString("disabled_reason"))
            }
            let news = try zip(rows, paused).map { row, pause in
                HookCalls.News(
                    owner: try row.int64("created_by"), scheduleID: pause.scheduleID,
                    data: HookCalls.paused(
                        scheduleID: pause.scheduleID, by: nil, at: try row.date("paused_at") ?? Date(), note: nil,
                        cause: pause.why == .failures ? .failures : .deadLetters, reason: pause.reason))
            }
            try await HookCalls.queue(.schedulePaused, news, hookToken: hookToken, connection: connection)
            return paused
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
}
