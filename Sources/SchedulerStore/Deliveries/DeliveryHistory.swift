import Foundation
import Postgres

/// The bounded history of delivery records: `deliveries` is partitioned by UTC week, Monday
/// to Sunday (ranges of delivery ids, which start with their occurrence's time; migration
/// 0006). `maintain` adds the partitions of the coming weeks and drops those whose whole week
/// is older than the retention (a dropped week's records still wanted, queued, retrying or
/// dead, move to `deliveries_default` first). Beat runs it every hour; `scheduler-ctl maintain-history`
/// runs it on demand.
public struct DeliveryHistory: Sendable {
    let pool: PostgresPool
    /// Days a record is kept at least (at most 7 more: weeks are dropped whole); 0 keeps everything.
    public let retentionDays: Int
    /// Days after today whose week gets its partition ahead of time.
    public let daysAhead: Int

    public init(pool: PostgresPool, retentionDays: Int, daysAhead: Int = 7) {
        self.pool = pool
        self.retentionDays = retentionDays
        self.daysAhead = daysAhead
    }

    public struct Maintenance: Sendable, Equatable {
        public let added: Int
        public let dropped: Int

        public init(added: Int, dropped: Int) {
            self.added = added
            self.dropped = dropped
        }
    }

    /// One partition of `deliveries`: a week (its Monday, `yyyy-MM-dd`, UTC) or the default one (nil).
    public struct Partition: Sendable, Equatable {
        public let name: String
        public let day: String?
        /// PostgreSQL's estimate (from the last VACUUM or ANALYZE); -1 when never counted.
        public let estimatedRows: Int
    }

    /// Adds the partitions of the weeks from yesterday's to that `daysAhead` days from now, then drops those past
    /// the retention: each in a transaction of its own that waits at most `lockTimeout`
    /// seconds for its locks (it fails then, and the next run tries again). Then drops the
    /// histories of schedules deleted longer ago than the retention.
    @discardableResult
    public func maintain(lockTimeout: Int = 5) async throws -> Maintenance {
        let added = try await pool.withTransaction { connection in
            try await Self.limit(connection, lockTimeout: lockTimeout)
            return try await connection.query(
                """
                SELECT scheduler_add_delivery_partitions(
                    (now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + $1::int)
                """, [String(daysAhead)]
            ).first?[0].flatMap { Int($0) } ?? 0
        }
        let dropped = try await pool.withTransaction { connection in
            try await Self.limit(connection, lockTimeout: lockTimeout)
            return try await connection.query("SELECT scheduler_drop_delivery_partitions($1::int)", [String(retentionDays)])
                .first?[0].flatMap { Int($0) } ?? 0
        }
        // The histories of schedules deleted longer ago than the retention go with their records.
        try await ScheduleHistory(pool: pool).pruneDeleted(olderThanDays: retentionDays)
        return Maintenance(added: added, dropped: dropped)
    }

    /// A lock not granted soon fails the statement (rather than queueing every reader and
    /// writer of `deliveries` behind it); the default partition's clean-up may take long.
    private static func limit(_ connection: PostgresConnection, lockTimeout: Int) async throws {
        try await connection.execute("SET LOCAL lock_timeout = '\(max(1, lockTimeout))s'")
        try await connection.execute("SET LOCAL statement_timeout = '15min'")
    }

    /// Adds the partitions of the weeks from `first`'s to `last`'s (UTC) that do not exist yet.
    @discardableResult
    public func addPartitions(from first: Date, to last: Date) async throws -> Int {
        try await pool.query(
            "SELECT scheduler_add_delivery_partitions(($1::timestamptz AT TIME ZONE 'UTC')::date, ($2::timestamptz AT TIME ZONE 'UTC')::date)",
            [SQL.text(first), SQL.text(last)]
        ).first?[0].flatMap { Int($0) } ?? 0
    }

    /// The partitions of `deliveries`, weeks in order, the default one last.
    public func partitions() async throws -> [Partition] {
        try await pool.query(
            """
            SELECT c.relname AS name, c.reltuples::bigint AS rows,
                   CASE WHEN c.relname ~ '^deliveries_[0-9]{8}$' THEN to_char(to_date(substr(c.relname, 12), 'YYYYMMDD'), 'YYYY-MM-DD') END AS day
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'deliveries'::regclass
            ORDER BY (c.relname = 'deliveries_default'), c.relname
            """
        ).map { row in
            Partition(name: row["name"] ?? "", day: row["day"], estimatedRows: row["rows"].flatMap { Int($0) } ?? -1)
        }
    }
}
