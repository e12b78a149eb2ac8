import SchedulerCore
import SchedulerStore

extension Schedule {
    /// The contract's representation, fields in the contract's order.
    func json(_ links: Links) -> JSONValue {
        var object = JSONObject()
        object["url"] = .string(links.schedule(id))
        object["id"] = .string(id.lowercasedText)
        object["frequency"] = fields.frequency.map(JSONValue.int) ?? .null
        object["triggered"] = .int(triggered)
        object["cron_definition"] = fields.cronDefinition.map(JSONValue.string) ?? .null
        object["interval_definition"] = fields.intervalDefinition.map(JSONValue.string) ?? .null
        object["timezone"] = .string(fields.timezone)
        object["endpoint"] = .string(fields.endpoint)
        object["payload"] = fields.payload
        object["auth_token"] = fields.authToken.map(JSONValue.string) ?? .null
        object["next_send_at"] = fields.nextSendAt.map { .string(Timestamp.format($0)) } ?? .null
        object["enabled"] = .bool(fields.enabled)
        object["created_at"] = .string(Timestamp.format(createdAt))
        object["created_by"] = createdBy.map { .string(links.user($0)) } ?? .null
        object["updated_at"] = .string(Timestamp.format(updatedAt))
        object["updated_by"] = updatedBy.map { .string(links.user($0)) } ?? .null
        object["disabled_reason"] = disabledReason.map(JSONValue.string) ?? .null
        object["paused_note"] = fields.pausedNote.map(JSONValue.string) ?? .null
        object["paused_by"] = pausedBy.map { .string(links.user($0)) } ?? .null
        object["paused_at"] = pausedAt.map { .string(Timestamp.format($0)) } ?? .null
        object["start_at"] = fields.window.start.map { .string(Timestamp.format($0)) } ?? .null
        object["end_at"] = fields.window.end.map { .string(Timestamp.format($0)) } ?? .null
        object["catchup_window"] = fields.catchupWindow.map(JSONValue.int) ?? .null
        object["overlap"] = .string(fields.overlap.rawValue)
        object["jitter"] = .int(fields.jitter)
        object["dst_gap"] = .string(fields.daylightSaving.gap.rawValue)
        object["dst_overlap"] = .string(fields.daylightSaving.overlap.rawValue)
        return .object(object)
    }
}

extension ScheduleHistory.Entry {
    /// `{id, at, action, by, changes}`: `by` is the user's URL, null for the service itself.
    func json(_ links: Links) -> JSONValue {
        .object([
            "id": .int(Int(id)),
            "at": .string(Timestamp.format(at)),
            "action": .string(action),
            "by": actorID.map { .string(links.user($0)) } ?? .null,
            "changes": changes,
        ])
    }
}
