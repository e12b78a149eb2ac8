import Foundation
import Postgres
import SchedulerCore

/// A subscription: when `event` happens, POST it to `target`.
public struct Webhook: Sendable, Equatable {
    public let id: Int64
    public let created: Date
    public let updated: Date
    public let userID: Int64
    public let event: String
    public let target: String

    /// The events a hook may subscribe to.
    public static let events = HookEvent.allCases.map(\.rawValue)

    /// As the API shows it, and as a hook call names its hook.
    public var json: JSONValue {
        .object([
            "id": .number(String(id)), "created": .string(Timestamp.format(created)),
            "updated": .string(Timestamp.format(updated)), "user": .number(String(userID)),
            "event": .string(event), "target": .string(target),
        ])
    }
}

/// What a hook may hear of. The original has `schedule.added`; the others tell of what
/// an owner or an operator must act on.
public enum HookEvent: String, CaseIterable, Sendable {
    /// A schedule was created.
    case scheduleAdded = "schedule.added"
    /// A schedule was paused: by someone (with their note), or by the service (its failures,
    /// its owner's dead letters, a definition that cannot be computed).
    case schedulePaused = "schedule.paused"
    /// An occurrence failed for good: it is a dead letter now.
    case deliveryFailed = "delivery.failed"
    /// A receiver's circuit opened: its jobs wait instead of using their attempts.
    case receiverOpened = "receiver.opened"
    /// A receiver's circuit closed again.
    case receiverClosed = "receiver.closed"

    /// Receivers are shared by every tenant: only admins' hooks hear of them.
    public var forAdminsOnly: Bool { self == .receiverOpened || self == .receiverClosed }
}

/// Webhooks in PostgreSQL. Each user sees and changes only their own.
public struct WebhookStore: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    static let columns = "id, created, updated, user_id, event, target"

    /// Registers a hook, within `quota`'s hooks when given (`QuotaExceeded` past it).
    public func create(event: String, target: String, userID: Int64, quota: Quota? = nil) async throws -> Webhook {
        try await pool.withTransaction { connection in
            if let quota { try await QuotaStore.admitHook(userID: userID, quota: quota, connection: connection) }
            let rows = try await connection.query(
                "INSERT INTO webhooks (user_id, event, target) VALUES ($1, $2, $3) RETURNING \(Self.columns)",
                [String(userID), event, target])
            guard let row = rows.first else { throw StoreError.unexpectedNull("webhooks") }
            return try Self.webhook(row)
        }
    }

    public func webhooks(userID: Int64, limit: Int, offset: Int) async throws -> Page<Webhook> {
        try await pool.withConnection { connection in
            let count =
                try await connection.query(
                    "SELECT count(*) FROM webhooks WHERE user_id = $1", [String(userID)]
                ).first?[0].flatMap { Int($0) } ?? 0
            let rows = try await connection.query(
                "SELECT \(Self.columns) FROM webhooks WHERE user_id = $1 ORDER BY created DESC, id DESC LIMIT $2 OFFSET $3",
                [String(userID), String(limit), String(offset)])
            return Page(items: try rows.map(Self.webhook), count: count)
        }
    }

    public func webhook(id: Int64, userID: Int64) async throws -> Webhook? {
        try await pool.query(
            "SELECT \(Self.columns) FROM webhooks WHERE id = $1 AND user_id = $2", [String(id), String(userID)]
        ).first.map(Self.webhook)
    }

    /// The hooks subscribed to `event` that may hear of what any of `owners` did: their own
    /// hooks and admins' hooks (admins hear of everything), each with whether an admin
    /// registered it.
    public static func webhooks(
        event: String, about owners: [Int64], connection: PostgresConnection
    ) async throws -> [(hook: Webhook, byAdmin: Bool)] {
        try await connection.query(
            """
            SELECT \(columns.split(separator: ",").map { "w." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", ")),
                u.is_admin
            FROM webhooks w JOIN auth_user u ON u.id = w.user_id
            WHERE w.event = $1 AND (u.is_admin OR w.user_id = ANY($2::bigint[]))
            ORDER BY w.id
            """, [event, PostgresArray.literal(owners.map { String($0) })]
        ).map { row in (try webhook(row), row["is_admin"] == "t") }
    }

    public func update(id: Int64, userID: Int64, event: String, target: String) async throws -> Webhook? {
        try await pool.query(
            """
            UPDATE webhooks SET event = $3, target = $4, updated = now()
            WHERE id = $1 AND user_id = $2 RETURNING \(Self.columns)
            """, [String(id), String(userID), event, target]
        ).first.map(Self.webhook)
    }

    public func delete(id: Int64, userID: Int64) async throws -> Bool {
        try await pool.query("DELETE FROM webhooks WHERE id = $1 AND user_id = $2", [String(id), String(userID)]).affectedRows == 1
    }

    static func webhook(_ row: PostgresRow) throws -> Webhook {
        Webhook(
            id: try row.requiredInt64("id"), created: try row.requiredDate("created"),
            updated: try row.requiredDate("updated"), userID: try row.requiredInt64("user_id"),
            event: try row.requiredString("event"), target: try row.requiredString("target"))
    }
}
