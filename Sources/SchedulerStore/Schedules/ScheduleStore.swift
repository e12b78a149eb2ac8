import Foundation
import Postgres
import SchedulerCore

/// Schedules in PostgreSQL.
public struct ScheduleStore: Sendable {
    let pool: PostgresPool
    /// HOOK_AUTH_TOKEN: sent to admins' hooks when they are told of a pause.
    let hookAuthToken: String?

    public init(pool: PostgresPool, hookAuthToken: String? = nil) {
        self.pool = pool
        self.hookAuthToken = hookAuthToken
    }

    /// How many schedules there are, and how many of them are enabled.
    public func counts() async throws -> (total: Int, enabled: Int) {
        let row = try await pool.query("SELECT count(*) AS total, count(*) FILTER (WHERE enabled) AS enabled FROM schedules").first
        return (Int(row?["total"] ?? "") ?? 0, Int(row?["enabled"] ?? "") ?? 0)
    }

    public struct Filter: Sendable, Equatable {
        public var enabled: Bool?
        public var endpoint: String?
        /// A substring of the endpoint.
        public var endpointContains: String?

        public init(enabled: Bool? = nil, endpoint: String? = nil, endpointContains: String? = nil) {
            self.enabled = enabled
            self.endpoint = endpoint
            self.endpointContains = endpointContains
        }
    }

    static let columns = """
        id, frequency, triggered, cron_definition, interval_definition, timezone, endpoint, payload,
        auth_token, next_send_at, enabled, created_at, created_by, updated_at, updated_by, disabled_reason,
        paused_note, paused_by, paused_at, start_at, end_at, catchup_window, jitter, dst_gap, dst_overlap, overlap
        """

    /// Inserts the schedule, within `quota` when given (checked in the same transaction,
    /// `QuotaExceeded` past it); `onCreated` runs in the same transaction (to queue webhook calls).
    public func create(
        _ fields: ScheduleFields, id: UUID = UUID(), by userID: Int64?, quota: Quota? = nil,
        onCreated: (Schedule, PostgresConnection) async throws -> Void = { _, _ in }
    ) async throws -> Schedule {
        try await pool.withTransaction { connection in
            let rate = fields.timing.deliveryRate
            // The owner's schedules before this one: its fair slot is drawn below their count
            // (see migration 0015), so a tenant with few is claimed first at a shared instant.
            var owned = 0
            if let quota, let userID {
                owned = try await QuotaStore.admitSchedule(
                    userID: userID, quota: quota, rate: rate, enabled: fields.enabled, connection: connection)
            } else if let userID {
                owned =
                    try await connection.query(
                        """
                        SELECT schedules_owned + coalesce((SELECT sum(schedules) FROM schedule_owner_deltas WHERE user_id = $1), 0) AS n
                        FROM auth_user WHERE id = $1
                        """, [SQL.text(userID)]
                    ).first?["n"].flatMap { Int($0) } ?? 0
            }
            let rows = try await connection.query(
                """
                INSERT INTO schedules (id, frequency, cron_definition, interval_definition, timezone, endpoint, payload,
                                       auth_token, next_send_at, enabled, paused_note, start_at, end_at, catchup_window, jitter,
                                       dst_gap, dst_overlap, overlap, created_by, updated_by, delivery_rate, fair_slot, paused_by, paused_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $19, $20,
                        random() * $21::float8,
                        CASE WHEN $10::boolean THEN NULL ELSE $19::bigint END, CASE WHEN $10::boolean THEN NULL ELSE now() END)
                RETURNING \(Self.columns)
                """, [SQL.text(id)] + Self.parameters(fields) + [SQL.text(userID), String(rate), String(owned + 1)])
            guard let row = rows.first else { throw StoreError.unexpectedNull("schedules") }
            let schedule = try Self.schedule(row)
            try await ScheduleHistory.record(
                scheduleID: schedule.id, ownerID: userID, actorID: userID, action: "created",
                changes: ScheduleChanges.diff(from: nil, to: schedule.fields), connection: connection)
            try await onCreated(schedule, connection)
            return schedule
        }
    }

    /// The schedule with `id`, if `owner` may see it (`owner` nil: an admin, who sees all).
    public func schedule(id: UUID, owner: Int64? = nil) async throws -> Schedule? {
        try await pool.query(
            "SELECT \(Self.columns) FROM schedules WHERE id = $1 AND ($2::bigint IS NULL OR created_by = $2)",
            [SQL.text(id), SQL.text(owner)]
        ).first.map(Self.schedule)
    }

    /// A page of the schedules `owner` created (`owner` nil: everyone's).
    public func schedules(filter: Filter, owner: Int64? = nil, limit: Int, offset: Int) async throws -> Page<Schedule> {
        let conditions =
            "($1::boolean IS NULL OR enabled = $1) AND ($2::text IS NULL OR endpoint = $2) AND ($3::bigint IS NULL OR created_by = $3)"
            + " AND ($4::text IS NULL OR strpos(endpoint, $4) > 0)"
        let filterParameters = [SQL.text(filter.enabled), filter.endpoint, SQL.text(owner), filter.endpointContains]
        return try await pool.withConnection { connection in
            let count =
                try await connection.query(
                    "SELECT count(*) FROM schedules WHERE \(conditions)", filterParameters
                ).first?[0].flatMap { Int($0) } ?? 0
            let rows = try await connection.query(
                """
                SELECT \(Self.columns) FROM schedules WHERE \(conditions)
                ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6
                """, filterParameters + [String(limit), String(offset)])
            return Page(items: try rows.map(Self.schedule), count: count)
        }
    }

    /// Reads the schedule under a row lock, lets `change` compute its new fields (or
    /// refuse them by throwing), and writes them: concurrent updates do not lose writes.
    /// With a `quota`, a change that adds to the delivery rate of its owner's enabled
    /// schedules must stay within it (`QuotaExceeded`). Returns nil when there is no such schedule.
    public func update(
        id: UUID, owner: Int64? = nil, by userID: Int64?, quota: Quota? = nil, _ change: (ScheduleFields) throws -> ScheduleFields
    ) async throws -> Schedule? {
        try await pool.withTransaction { connection in
            guard
                let row = try await connection.query(
                    "SELECT \(Self.columns) FROM schedules WHERE id = $1 AND ($2::bigint IS NULL OR created_by = $2) FOR UPDATE",
                    [SQL.text(id), SQL.text(owner)]
                ).first
            else { return nil }
            let stored = try Self.schedule(row)
            let existing = stored.fields
            let fields = try change(existing)
            let rate = fields.timing.deliveryRate
            if let quota, let creator = stored.createdBy {
                try await QuotaStore.admitChange(
                    userID: creator, quota: quota, oldRate: existing.enabled ? existing.timing.deliveryRate : 0,
                    newRate: fields.enabled ? rate : 0, connection: connection)
            }
            if existing.enabled && !fields.enabled {
                // Disabled: jobs already queued must not be POSTed.
                try await DeliveryStore.cancelPending(scheduleID: id, connection: connection)
            }
            let updated = try await connection.query(
                """
                UPDATE schedules SET frequency = $2, cron_definition = $3, interval_definition = $4, timezone = $5,
                    endpoint = $6, payload = $7, auth_token = $8, next_send_at = $9, enabled = $10,
                    paused_note = $11, start_at = $12, end_at = $13, catchup_window = $14, jitter = $15,
                    dst_gap = $16, dst_overlap = $17, overlap = $18,
                    -- Who paused it and when: set when it is disabled, kept while it stays so.
                    paused_by = CASE WHEN $10::boolean THEN NULL WHEN enabled THEN $19::bigint ELSE paused_by END,
                    paused_at = CASE WHEN $10::boolean THEN NULL WHEN enabled THEN now() ELSE paused_at END,
                    updated_by = $19, updated_at = now(), delivery_rate = $20,
                    disabled_reason = CASE WHEN $10::boolean OR $3 IS DISTINCT FROM cron_definition
                        OR $4 IS DISTINCT FROM interval_definition OR $5 IS DISTINCT FROM timezone
                        THEN NULL ELSE disabled_reason END
                WHERE id = $1
                RETURNING \(Self.columns)
                """, [SQL.text(id)] + Self.parameters(fields) + [SQL.text(userID), String(rate)])
            guard let schedule = try updated.first.map(Self.schedule) else { return nil }
            let changes = ScheduleChanges.diff(from: existing, to: schedule.fields)
            if changes.count > 0 {
                try await ScheduleHistory.record(
                    scheduleID: id, ownerID: stored.createdBy, actorID: userID,
                    action: ScheduleChanges.action(from: existing, to: schedule.fields), changes: changes, connection: connection)
            }
            if existing.enabled && !schedule.fields.enabled {
                let data = HookCalls.paused(
                    scheduleID: id, by: userID, at: schedule.pausedAt ?? Date(), note: schedule.fields.pausedNote, cause: .user,
                    reason: nil)
                try await HookCalls.queue(
                    .schedulePaused, [.init(owner: stored.createdBy, scheduleID: id, data: data)], hookToken: hookAuthToken,
                    connection: connection)
            }
            return schedule
        }
    }

    /// True when a schedule `owner` may see (nil: any) was deleted (by `userID`); its queued
    /// jobs are cancelled with it.
    public func delete(id: UUID, owner: Int64? = nil, by userID: Int64? = nil) async throws -> Bool {
        try await pool.withTransaction { connection in
            let mine = try await connection.query(
                "SELECT created_by FROM schedules WHERE id = $1 AND ($2::bigint IS NULL OR created_by = $2) FOR UPDATE",
                [SQL.text(id), SQL.text(owner)])
            guard let row = mine.first else { return false }
            try await DeliveryStore.cancelPending(scheduleID: id, connection: connection)
            try await ScheduleHistory.record(
                scheduleID: id, ownerID: try row.int64("created_by"), actorID: userID, action: "deleted", changes: [:],
                connection: connection)
            return try await connection.query("DELETE FROM schedules WHERE id = $1", [SQL.text(id)]).affectedRows == 1
        }
    }

    /// Queues one delivery of the schedule at once, whatever its state (a fresh delivery id,
    /// origin `manual`), counted against the caller's creates-a-minute `quota` when given;
    /// nil when `owner` (nil: any) has no such schedule. Beat publishes it: the insert wakes
    /// it, and it takes deliveries waiting to be published in every round.
    public func trigger(id: UUID, owner: Int64?, by userID: Int64?, quota: Quota?) async throws -> Delivery? {
        try await pool.withTransaction { connection in
            let mine = try await connection.query(
                "SELECT created_by FROM schedules WHERE id = $1 AND ($2::bigint IS NULL OR created_by = $2) FOR SHARE",
                [SQL.text(id), SQL.text(owner)])
            guard let schedule = mine.first else { return nil }
            if let quota, let userID { try await QuotaStore.admitCreates(userID: userID, quota: quota, connection: connection) }
            let now = Date()
            let job = DeliveryJob(
                deliveryID: DeliveryID.fresh(at: now), scheduleID: id, scheduledFor: now, kind: .schedule, origin: .manual)
            let rows = try await connection.query(
                """
                INSERT INTO deliveries (id, schedule_id, kind, scheduled_for, routing_key, origin)
                VALUES ($1, $2, 'schedule', $3, $4, 'manual')
                RETURNING \(DeliveryStore.columns)
                """, [SQL.text(job.deliveryID), SQL.text(id), SQL.text(now), job.routingKey])
            try await ScheduleHistory.record(
                scheduleID: id, ownerID: try schedule.int64("created_by"), actorID: userID, action: "triggered",
                changes: ["delivery": .string(job.deliveryID.lowercasedText)], connection: connection)
            return try rows.first.map(DeliveryStore.delivery)
        }
    }

    /// What a backfill did: the range's occurrences, and how many of them it queued (the
    /// others were sent before, by beat or an earlier backfill: their delivery ids exist).
    public struct Backfill: Sendable, Equatable {
        public let occurrences: Int
        public let queued: Int
    }

    /// Why a backfill was refused.
    public enum BackfillRefusal: Error, Sendable, Equatable {
        /// The schedule has no crontab or interval.
        case noOccurrences
        /// The range holds more than the limit.
        case tooMany(limit: Int)
    }

    /// Queues every occurrence of the schedule from `from` to `to` that was not delivered
    /// before, each with the id its occurrence always has (so a second backfill of the range,
    /// or one over what beat sent, sends nothing twice), origin `backfill`; beat publishes
    /// them. At most `limit` occurrences; the queued ones count against `quota`'s creates a
    /// minute when given. Nil when `owner` (nil: any) has no such schedule.
    public func backfill(
        id: UUID, owner: Int64?, by userID: Int64, from: Date, to: Date, limit: Int, quota: Quota?
    ) async throws -> Result<Backfill, BackfillRefusal>? {
        try await pool.withTransaction { connection in
            guard
                let row = try await connection.query(
                    "SELECT \(Self.columns) FROM schedules WHERE id = $1 AND ($2::bigint IS NULL OR created_by = $2) FOR SHARE",
                    [SQL.text(id), SQL.text(owner)]
                ).first
            else { return nil }
            let schedule = try Self.schedule(row)
            let timing = schedule.fields.timing
            guard timing.isRecurring else { return .failure(.noOccurrences) }
            let anchor = schedule.fields.nextSendAt ?? schedule.fields.window.start ?? schedule.createdAt
            guard
                let times = ScheduleOccurrences.between(
                    timing, anchor: anchor, from: from, to: to, window: schedule.fields.window, limit: limit)
            else { return .failure(.tooMany(limit: limit)) }
            let jobs = times.map {
                DeliveryJob(
                    deliveryID: DeliveryID.derive(scheduleID: id, scheduledFor: $0), scheduleID: id, scheduledFor: $0, kind: .schedule,
                    origin: .backfill)
            }
            let ids = PostgresArray.literal(jobs.map { SQL.text($0.deliveryID) })
            let existing =
                try await connection.query("SELECT count(*) AS n FROM deliveries WHERE id = ANY($1::uuid[])", [ids])
                .first?["n"].flatMap { Int($0) } ?? 0
            if let quota {
                try await QuotaStore.admitCreates(userID: userID, quota: quota, count: jobs.count - existing, connection: connection)
            }
            let inserted = try await connection.query(
                """
                INSERT INTO deliveries (id, schedule_id, kind, scheduled_for, routing_key, origin)
                SELECT u.id, $2, 'schedule', u.scheduled_for, $4, 'backfill'
                FROM unnest($1::uuid[], $3::timestamptz[]) AS u(id, scheduled_for)
                ON CONFLICT (id) DO NOTHING
                """, [ids, SQL.text(id), PostgresArray.literal(jobs.map { SQL.text($0.scheduledFor) }), jobs.first?.routingKey ?? ""]
            ).affectedRows
            try await ScheduleHistory.record(
                scheduleID: id, ownerID: schedule.createdBy, actorID: userID, action: "backfilled",
                changes: [
                    "from": .string(Timestamp.format(from)), "to": .string(Timestamp.format(to)), "occurrences": .int(jobs.count),
                    "queued": .int(inserted),
                ], connection: connection)
            return .success(Backfill(occurrences: jobs.count, queued: inserted))
        }
    }

    static func parameters(_ fields: ScheduleFields) -> [String?] {
        [
            SQL.text(fields.frequency), fields.cronDefinition, fields.intervalDefinition, fields.timezone,
            fields.endpoint, fields.payload == .null ? nil : fields.payload.serialized, fields.authToken,
            SQL.text(fields.nextSendAt), SQL.text(fields.enabled), fields.pausedNote, SQL.text(fields.window.start),
            SQL.text(fields.window.end), SQL.text(fields.catchupWindow), String(fields.jitter),
            fields.daylightSaving.gap.rawValue, fields.daylightSaving.overlap.rawValue, fields.overlap.rawValue,
        ]
    }

    static func schedule(_ row: PostgresRow) throws -> Schedule {
        let payload: JSONValue
        if let text = row["payload"] {
            do {
                payload = try JSONParser.parse(text)
            } catch {
                throw StoreError.unreadable("payload", "\(error)")
            }
        } else {
            payload = .null
        }
        let fields = ScheduleFields(
            frequency: try row.int64("frequency").map { Int($0) },
            cronDefinition: row["cron_definition"], intervalDefinition: row["interval_definition"],
            timezone: try row.requiredString("timezone"), endpoint: try row.requiredString("endpoint"),
            // A time PostgreSQL holds but this service cannot (`-infinity`, a year past 9999,
            // written by hand) reads as none: beat disables such a schedule and says why.
            payload: payload, authToken: row["auth_token"], nextSendAt: (try? row.date("next_send_at")) ?? nil,
            enabled: try row.bool("enabled"), pausedNote: row["paused_note"],
            window: ScheduleWindow(start: try row.date("start_at"), end: try row.date("end_at")),
            catchupWindow: try row.int64("catchup_window").map { Int($0) }, jitter: Int(try row.int64("jitter") ?? 0),
            daylightSaving: DeliveryStore.daylightSaving(row), overlap: row["overlap"].flatMap(OverlapPolicy.init(rawValue:)) ?? .allow)
        return Schedule(
            id: try row.uuid("id"), fields: fields, triggered: Int(try row.requiredInt64("triggered")),
            createdAt: try row.requiredDate("created_at"), createdBy: try row.int64("created_by"),
            updatedAt: try row.requiredDate("updated_at"), updatedBy: try row.int64("updated_by"),
            disabledReason: row["disabled_reason"], pausedBy: try row.int64("paused_by"), pausedAt: try row.date("paused_at"))
    }
}
