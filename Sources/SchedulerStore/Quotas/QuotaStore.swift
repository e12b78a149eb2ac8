import Foundation
import Postgres
import SchedulerCore

/// A write refused because it would take a user past a quota.
public struct QuotaExceeded: Error, Sendable, Equatable, CustomStringConvertible {
    public let quota: Quota.Name
    public let limit: Double
    public let used: Double
    /// Seconds until a rate's window ends (rates only).
    public let retryAfter: Int?

    public var description: String {
        let limitText = Self.number(limit)
        let usedText = Self.number(used)
        switch quota {
        case .schedules: return "Quota exceeded: at most \(limitText) schedules (you have \(usedText))."
        case .hooks: return "Quota exceeded: at most \(limitText) webhooks (you have \(usedText))."
        case .createsPerMinute:
            return "Quota exceeded: at most \(limitText) schedules created a minute; try again in \(retryAfter ?? 60) seconds."
        case .deliveriesPerSecond:
            return
                "Quota exceeded: your enabled schedules may make at most \(limitText) deliveries a second (they would make \(usedText))."
        case .minimumInterval: return "Quota exceeded: intervals of at least \(limitText) seconds."
        }
    }

    /// A whole number as digits, another with three decimals.
    public static func number(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(format: "%.3f", value)
    }
}

/// The quotas' defaults for each kind of user.
public struct QuotaDefaults: Sendable, Equatable {
    public let user: Quota
    public let admin: Quota

    public init(user: Quota, admin: Quota) {
        self.user = user
        self.admin = admin
    }

    public init(_ configuration: Configuration) {
        self.init(user: configuration.userQuota, admin: configuration.adminQuota)
    }

    public func of(admin: Bool) -> Quota { admin ? self.admin : user }
}

/// Quotas and their use, per user. The checks run inside the transaction of the write they
/// guard, under a lock of the user's row, so that concurrent writes (and several web
/// processes) cannot pass a bound together.
public struct QuotaStore: Sendable {
    let pool: PostgresPool
    public let defaults: QuotaDefaults

    public init(pool: PostgresPool, defaults: QuotaDefaults) {
        self.pool = pool
        self.defaults = defaults
    }

    /// What a user's quota and use are now.
    public struct Usage: Sendable, Equatable {
        public let quota: Quota
        public let override: QuotaOverride
        public let schedules: Int
        public let hooks: Int
        public let createsThisMinute: Int
        /// Seconds until the creates' window ends (nil: no window open).
        public let windowEndsIn: Int?
        public let deliveriesPerSecond: Double
    }

    public func usage(userID: Int64) async throws -> Usage? {
        guard
            let row = try await pool.query(
                """
                SELECT u.is_admin, q.schedules AS q_schedules, q.hooks AS q_hooks, q.creates_per_minute AS q_creates,
                       q.deliveries_per_second AS q_rate, q.min_interval_us AS q_interval,
                       u.schedules_owned + coalesce(d.schedules, 0) AS schedules,
                       greatest(0, u.delivery_rate_enabled + coalesce(d.rate, 0)) AS rate,
                       (SELECT count(*) FROM webhooks WHERE user_id = u.id) AS hooks,
                       CASE WHEN u.creates_window_start > now() - interval '1 minute' THEN u.creates_in_window ELSE 0 END AS creates,
                       CASE WHEN u.creates_window_start > now() - interval '1 minute'
                            THEN ceil(extract(epoch FROM u.creates_window_start + interval '1 minute' - now()))::int END AS window_ends_in
                FROM auth_user u LEFT JOIN user_quotas q ON q.user_id = u.id
                LEFT JOIN LATERAL (
                    SELECT sum(schedules) AS schedules, sum(rate) AS rate FROM schedule_owner_deltas WHERE user_id = u.id) AS d ON true
                WHERE u.id = $1
                """, [SQL.text(userID)]
            ).first
        else { return nil }
        let override = try Self.override(row)
        return Usage(
            quota: defaults.of(admin: try row.bool("is_admin")).overridden(by: override), override: override,
            schedules: Int(try row.requiredInt64("schedules")), hooks: Int(try row.requiredInt64("hooks")),
            createsThisMinute: Int(try row.requiredInt64("creates")),
            windowEndsIn: try row.int64("window_ends_in").map { Int($0) }, deliveriesPerSecond: Double(row["rate"] ?? "0") ?? 0)
    }

    /// The quota of `user` (their kind's defaults with their own values).
    public func quota(for user: User) async throws -> Quota {
        let row = try await pool.query(
            """
            SELECT schedules AS q_schedules, hooks AS q_hooks, creates_per_minute AS q_creates,
                   deliveries_per_second AS q_rate, min_interval_us AS q_interval
            FROM user_quotas WHERE user_id = $1
            """, [SQL.text(user.id)]
        ).first
        let base = defaults.of(admin: user.isAdmin)
        return try row.map { base.overridden(by: try Self.override($0)) } ?? base
    }

    /// Sets a user's own values (nil values: the default again; an empty override removes them).
    public func set(userID: Int64, override: QuotaOverride) async throws {
        if override.isEmpty {
            try await pool.query("DELETE FROM user_quotas WHERE user_id = $1", [SQL.text(userID)])
            return
        }
        try await pool.query(
            """
            INSERT INTO user_quotas (user_id, schedules, hooks, creates_per_minute, deliveries_per_second, min_interval_us)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (user_id) DO UPDATE SET schedules = $2, hooks = $3, creates_per_minute = $4,
                deliveries_per_second = $5, min_interval_us = $6, updated_at = now()
            """,
            [
                SQL.text(userID), SQL.text(override.schedules), SQL.text(override.hooks), SQL.text(override.createsPerMinute),
                override.deliveriesPerSecond.map { String($0) }, SQL.text(override.minimumInterval),
            ])
    }

    static func override(_ row: PostgresRow) throws -> QuotaOverride {
        QuotaOverride(
            schedules: try row.int64("q_schedules").map { Int($0) }, hooks: try row.int64("q_hooks").map { Int($0) },
            createsPerMinute: try row.int64("q_creates").map { Int($0) }, deliveriesPerSecond: row["q_rate"].flatMap(Double.init),
            minimumInterval: try row.int64("q_interval"))
    }

    // MARK: Checks inside a write's transaction

    /// Locks the user's row (so that this user's writes are counted one at a time) and folds
    /// the changes to their count and rate that the trigger appended since (migration 0013).
    static func lock(_ userID: Int64, connection: PostgresConnection) async throws {
        try await connection.query("SELECT 1 FROM auth_user WHERE id = $1 FOR UPDATE", [SQL.text(userID)])
        try await connection.query(
            """
            WITH folded AS (DELETE FROM schedule_owner_deltas WHERE user_id = $1 RETURNING schedules, rate)
            UPDATE auth_user SET schedules_owned = schedules_owned + t.schedules,
                delivery_rate_enabled = greatest(0, delivery_rate_enabled + t.rate)
            FROM (SELECT sum(schedules) AS schedules, sum(rate) AS rate FROM folded) AS t
            WHERE id = $1 AND t.schedules IS NOT NULL
            """, [SQL.text(userID)])
    }

    /// Folds every user's appended changes into their rows (beat does it hourly, so that a
    /// user who stopped writing does not keep a long list to sum on every read).
    public static func foldAll(pool: PostgresPool) async throws {
        try await pool.query(
            """
            WITH folded AS (DELETE FROM schedule_owner_deltas RETURNING user_id, schedules, rate)
            UPDATE auth_user u SET schedules_owned = u.schedules_owned + t.schedules,
                delivery_rate_enabled = greatest(0, u.delivery_rate_enabled + t.rate)
            FROM (SELECT user_id, sum(schedules) AS schedules, sum(rate) AS rate FROM folded GROUP BY user_id) AS t
            WHERE u.id = t.user_id
            """)
    }

    /// A new schedule of `userID` with `rate` (deliveries a second, counted when `enabled`):
    /// within the schedules, creates-a-minute and deliveries-a-second quotas, or `QuotaExceeded`.
    /// Counts the create; returns how many schedules the user had before it.
    @discardableResult
    public static func admitSchedule(
        userID: Int64, quota: Quota, rate: Double, enabled: Bool, connection: PostgresConnection
    ) async throws -> Int {
        try await lock(userID, connection: connection)
        let row = try await connection.query(
            """
            SELECT schedules_owned AS schedules, delivery_rate_enabled AS rate, \(createsInWindow)
            FROM auth_user WHERE id = $1
            """, [SQL.text(userID)]
        ).first
        guard let row else { return 0 }
        let schedules = Int(try row.requiredInt64("schedules"))
        try checkCreates(row, quota: quota)
        if schedules >= quota.schedules {
            throw QuotaExceeded(quota: .schedules, limit: Double(quota.schedules), used: Double(schedules), retryAfter: nil)
        }
        try checkRate(used: Double(row["rate"] ?? "0") ?? 0, adding: enabled ? rate : 0, quota: quota)
        try await countCreate(userID: userID, connection: connection)
        return schedules
    }

    /// `count` deliveries asked for at once (a run-now, a backfill's occurrences) by `userID`:
    /// counted with their creates, all within the creates-a-minute quota, or `QuotaExceeded`.
    public static func admitCreates(userID: Int64, quota: Quota, count: Int = 1, connection: PostgresConnection) async throws {
        guard count > 0 else { return }
        try await lock(userID, connection: connection)
        let row = try await connection.query("SELECT \(createsInWindow) FROM auth_user WHERE id = $1", [SQL.text(userID)]).first
        guard let row else { return }
        try checkCreates(row, quota: quota, adding: count)
        try await countCreate(userID: userID, count: count, connection: connection)
    }

    /// A user's creates in this minute's window (`creates`), and the seconds until it ends.
    static let createsInWindow = """
        CASE WHEN creates_window_start > now() - interval '1 minute' THEN creates_in_window ELSE 0 END AS creates,
        CASE WHEN creates_window_start > now() - interval '1 minute'
             THEN ceil(extract(epoch FROM creates_window_start + interval '1 minute' - now()))::int END AS window_ends_in
        """

    static func checkCreates(_ row: PostgresRow, quota: Quota, adding: Int = 1) throws {
        let creates = Int(try row.requiredInt64("creates"))
        guard creates + adding > quota.createsPerMinute else { return }
        throw QuotaExceeded(
            quota: .createsPerMinute, limit: Double(quota.createsPerMinute), used: Double(creates),
            retryAfter: max(1, Int(try row.int64("window_ends_in") ?? 60)))
    }

    static func countCreate(userID: Int64, count: Int = 1, connection: PostgresConnection) async throws {
        try await connection.query(
            """
            UPDATE auth_user SET
                creates_in_window = CASE WHEN creates_window_start > now() - interval '1 minute' THEN creates_in_window + $2 ELSE $2 END,
                creates_window_start = CASE WHEN creates_window_start > now() - interval '1 minute' THEN creates_window_start ELSE now() END
            WHERE id = $1
            """, [SQL.text(userID), String(count)])
    }

    /// A change of one of `userID`'s schedules from `oldRate` to `newRate` (each counted when
    /// enabled): within the deliveries-a-second quota, unless it does not add to the rate.
    /// The user's sum is kept on their row (migration 0013's trigger).
    public static func admitChange(
        userID: Int64, quota: Quota, oldRate: Double, newRate: Double, connection: PostgresConnection
    ) async throws {
        guard newRate > oldRate else { return }
        try await lock(userID, connection: connection)
        let all =
            try await connection.query("SELECT delivery_rate_enabled AS rate FROM auth_user WHERE id = $1", [SQL.text(userID)])
            .first?["rate"].flatMap(Double.init) ?? 0
        try checkRate(used: max(0, all - oldRate), adding: newRate, quota: quota)
    }

    static func checkRate(used: Double, adding: Double, quota: Quota) throws {
        // A little slack for the sum's rounding: 100 schedules every second fit 100 a second.
        guard adding > 0, used + adding > quota.deliveriesPerSecond * (1 + 1e-9) else { return }
        throw QuotaExceeded(quota: .deliveriesPerSecond, limit: quota.deliveriesPerSecond, used: used + adding, retryAfter: nil)
    }

    /// A new webhook of `userID`: within the hooks quota, or `QuotaExceeded`.
    public static func admitHook(userID: Int64, quota: Quota, connection: PostgresConnection) async throws {
        try await lock(userID, connection: connection)
        let hooks =
            try await connection.query("SELECT count(*) AS n FROM webhooks WHERE user_id = $1", [SQL.text(userID)]).first?["n"]
            .flatMap { Int($0) } ?? 0
        if hooks >= quota.hooks {
            throw QuotaExceeded(quota: .hooks, limit: Double(quota.hooks), used: Double(hooks), retryAfter: nil)
        }
    }
}
