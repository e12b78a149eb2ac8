import Foundation
import Postgres
import SchedulerCore

/// Telling hooks what happened. A hook call is a delivery record (kind `webhook`, owned by
/// the hook's owner) queued in the transaction of the change it tells of: a change rolled
/// back tells nothing, a committed one is told once. Beat publishes it, a worker POSTs and
/// signs it like any delivery, with retries and a dead letter. A hook call's own failure
/// tells nothing: no event feeds another.
///
/// Its body is the original's: `{"hook": <the hook as the API shows it>, "data": ...}`.
public enum HookCalls {
    /// One thing that happened: whose it is (nil: no tenant's, as a receiver), which
    /// schedule it is about (the hook call is listed with that schedule's deliveries), and
    /// what to tell.
    public struct News: Sendable {
        public let owner: Int64?
        public let scheduleID: UUID?
        public let data: JSONValue

        public init(owner: Int64?, scheduleID: UUID?, data: JSONValue) {
            self.owner = owner
            self.scheduleID = scheduleID
            self.data = data
        }
    }

    /// Queues a call of every hook subscribed to `event` that may hear of each piece of
    /// `news`: its owner's hooks and admins' hooks (for an event `forAdminsOnly`, admins'
    /// only). HOOK_AUTH_TOKEN (`hookToken`) goes only to hooks an admin registered. Returns
    /// how many calls it queued.
    @discardableResult
    public static func queue(
        _ event: HookEvent, _ news: [News], hookToken: String?, connection: PostgresConnection
    ) async throws -> Int {
        guard !news.isEmpty else { return 0 }
        let owners = event.forAdminsOnly ? [] : Array(Set(news.compactMap(\.owner))).sorted()
        let hooks = try await WebhookStore.webhooks(event: event.rawValue, about: owners, connection: connection)
        guard !hooks.isEmpty else { return 0 }
        var ids: [String?] = []
        var schedules: [String?] = []
        var targets: [String?] = []
        var bodies: [String?] = []
        var tokens: [String?] = []
        var hookOwners: [String?] = []
        for item in news {
            for (hook, byAdmin) in hooks where byAdmin || (item.owner == hook.userID && !event.forAdminsOnly) {
                ids.append(SQL.text(DeliveryID.fresh()))
                schedules.append(item.scheduleID.map(SQL.text))
                targets.append(hook.target)
                bodies.append(JSONValue.object(["hook": hook.json, "data": item.data]).serialized)
                tokens.append(byAdmin ? hookToken : nil)
                hookOwners.append(SQL.text(hook.userID))
            }
        }
        guard !ids.isEmpty else { return 0 }
        try await connection.query(
            """
            INSERT INTO deliveries (id, schedule_id, kind, scheduled_for, routing_key, target, body, auth_token, owner_id)
            SELECT u.id, u.schedule_id, 'webhook', now(), 'schedule.' || coalesce(u.schedule_id::text, 'none'), u.target,
                u.body::json, u.auth_token, u.owner_id
            FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bigint[])
                AS u(id, schedule_id, target, body, auth_token, owner_id)
            """,
            [
                PostgresArray.literal(ids), PostgresArray.literal(schedules), PostgresArray.literal(targets),
                PostgresArray.literal(bodies), PostgresArray.literal(tokens), PostgresArray.literal(hookOwners),
            ])
        return ids.count
    }

    /// `schedule.paused`'s data: which schedule, by whom (a user's id, or null when the
    /// service paused it), when, their note, and the service's reason.
    public static func paused(
        scheduleID: UUID, by userID: Int64?, at: Date, note: String?, cause: PauseCause, reason: String?
    ) -> JSONValue {
        .object([
            "schedule_id": .string(scheduleID.lowercasedText),
            "paused_by": userID.map { .number(String($0)) } ?? .null,
            "paused_at": .string(Timestamp.format(at)),
            "paused_note": note.map(JSONValue.string) ?? .null,
            "cause": .string(cause.rawValue),
            "reason": reason.map(JSONValue.string) ?? .null,
        ])
    }

    /// Why a schedule was paused.
    public enum PauseCause: String, Sendable {
        /// Someone disabled it (`paused_by`, `paused_note`).
        case user
        /// Its last `PAUSE_AFTER_FAILURES` occurrences failed for good.
        case failures
        /// Its owner holds `DEAD_LETTERS_PER_TENANT` dead letters.
        case deadLetters = "dead_letters"
        /// Beat could not compute its next run (a definition edited by hand, a time out of range).
        case invalidDefinition = "invalid_definition"
    }
}
