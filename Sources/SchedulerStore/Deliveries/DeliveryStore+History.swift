import Foundation
import Postgres
import SchedulerCore

/// What the API and operators read of deliveries: a schedule's history, dead deliveries as
/// failed tasks, one delivery.
extension DeliveryStore {
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
        try await connection.query(
            "UPDATE deliveries SET state = 'cancelled', finished_at = now(), updated_at = now() WHERE schedule_id = $1 AND state = 'buffered'",
            [SQL.text(scheduleID)])
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
}
