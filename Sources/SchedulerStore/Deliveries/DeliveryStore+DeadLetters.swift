import Foundation
import Postgres
import SchedulerCore

/// Dead letters for operators (`scheduler-ctl dead-letters`, the console, `failed-tasks`):
/// filters, counts, re-drive and purge bookkeeping.
extension DeliveryStore {
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
            finishedAt: try row.date("finished_at"), origin: row["origin"].flatMap(DeliveryJob.Origin.init(rawValue:)) ?? .scheduled)
    }
}
