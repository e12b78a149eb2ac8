import Foundation
import Postgres
import SchedulerCore

/// Each schedule's history (migration 0017): every create, change, pause, resume, run-now and
/// delete, who did it and what changed.
public struct ScheduleHistory: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    /// The entries a schedule keeps; older ones are dropped as new ones come.
    public static let entriesPerSchedule = 1_000

    /// One entry.
    public struct Entry: Sendable, Equatable {
        public let id: Int64
        public let scheduleID: UUID
        public let at: Date
        /// Who did it; nil: the service itself (a pause after failures, a quarantine).
        public let actorID: Int64?
        /// `created`, `changed`, `paused`, `resumed`, `triggered` or `deleted`.
        public let action: String
        public let changes: JSONValue
    }

    /// Records an entry in the caller's transaction, and drops the schedule's entries beyond
    /// `entriesPerSchedule`.
    static func record(
        scheduleID: UUID, ownerID: Int64?, actorID: Int64?, action: String, changes: JSONObject, connection: PostgresConnection
    ) async throws {
        try await connection.query(
            """
            INSERT INTO schedule_history (schedule_id, owner_id, actor_id, action, changes)
            VALUES ($1, $2, $3, $4, $5::json)
            """,
            [SQL.text(scheduleID), SQL.text(ownerID), SQL.text(actorID), action, JSONValue.object(changes).serialized])
        try await connection.query(
            """
            DELETE FROM schedule_history WHERE schedule_id = $1 AND id <= (
                SELECT id FROM schedule_history WHERE schedule_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)
            """, [SQL.text(scheduleID), String(entriesPerSchedule)])
    }

    /// A page of the schedule's history, newest first, if `owner` (nil: any) may see it: their
    /// schedule, or one of theirs since deleted. Nil when they may not (or there is none).
    public func entries(scheduleID: UUID, owner: Int64?, limit: Int, offset: Int) async throws -> Page<Entry>? {
        try await pool.withConnection { connection in
            let mine = "schedule_id = $1 AND ($2::bigint IS NULL OR owner_id = $2)"
            let count =
                try await connection.query(
                    "SELECT count(*) FROM schedule_history WHERE \(mine)", [SQL.text(scheduleID), SQL.text(owner)]
                ).first?[0].flatMap { Int($0) } ?? 0
            if count == 0 {
                // A schedule of theirs from before histories were kept: an empty history.
                let visible = try await connection.query(
                    "SELECT 1 FROM schedules WHERE id = $1 AND ($2::bigint IS NULL OR created_by = $2)",
                    [SQL.text(scheduleID), SQL.text(owner)])
                return visible.count == 1 ? Page(items: [], count: 0) : nil
            }
            let rows = try await connection.query(
                """
                SELECT id, schedule_id, at, actor_id, action, changes::text AS changes FROM schedule_history
                WHERE \(mine) ORDER BY id DESC LIMIT $3 OFFSET $4
                """, [SQL.text(scheduleID), SQL.text(owner), String(limit), String(offset)])
            return Page(
                items: try rows.map { row in
                    Entry(
                        id: try row.requiredInt64("id"), scheduleID: try row.uuid("schedule_id"),
                        at: try row.requiredDate("at"), actorID: try row.int64("actor_id"), action: try row.requiredString("action"),
                        changes: (try? JSONParser.parse(try row.requiredString("changes"))) ?? .object([:]))
                }, count: count)
        }
    }

    /// Drops the history of schedules deleted more than `days` ago; returns how many entries.
    @discardableResult
    public func pruneDeleted(olderThanDays days: Int) async throws -> Int {
        guard days > 0 else { return 0 }
        return try await pool.query(
            """
            DELETE FROM schedule_history WHERE schedule_id IN (
                SELECT schedule_id FROM schedule_history WHERE action = 'deleted' AND at < now() - make_interval(days => $1))
            """, [String(days)]
        ).affectedRows
    }
}
