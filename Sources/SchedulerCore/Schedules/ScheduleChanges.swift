import Foundation

/// What a change did to a schedule's fields, as its history keeps it:
/// `{"field": {"from": old, "to": new}}` for each field that changed, in the contract's
/// order. A secret (`auth_token`) is only `{"changed": true}`; a payload larger than
/// `inlinePayloadBytes` is `{"changed": true, "bytes": {"from": n, "to": m}}`, so the
/// history of a schedule stays small whatever its payloads.
public enum ScheduleChanges {
    public static let inlinePayloadBytes = 1_024

    /// The fields that differ between `old` (nil: none, a create) and `new`.
    public static func diff(from old: ScheduleFields?, to new: ScheduleFields) -> JSONObject {
        var changes = JSONObject()
        func compare(_ name: String, _ value: (ScheduleFields) -> JSONValue) {
            let before = old.map(value) ?? .null
            let after = value(new)
            guard before != after else { return }
            changes[name] = .object(["from": before, "to": after])
        }
        func time(_ date: Date?) -> JSONValue { date.map { .string(Timestamp.format($0)) } ?? .null }
        compare("frequency") { $0.frequency.map(JSONValue.int) ?? .null }
        compare("cron_definition") { $0.cronDefinition.map(JSONValue.string) ?? .null }
        compare("interval_definition") { $0.intervalDefinition.map(JSONValue.string) ?? .null }
        compare("timezone") { .string($0.timezone) }
        compare("endpoint") { .string($0.endpoint) }
        let (before, after) = (old?.payload ?? .null, new.payload)
        if before != after {
            let sizes = (before.serialized.utf8.count, after.serialized.utf8.count)
            changes["payload"] =
                max(sizes.0, sizes.1) <= inlinePayloadBytes
                ? .object(["from": before, "to": after])
                : .object(["changed": .bool(true), "bytes": .object(["from": .int(sizes.0), "to": .int(sizes.1)])])
        }
        if old?.authToken != new.authToken { changes["auth_token"] = .object(["changed": .bool(true)]) }
        compare("next_send_at") { time($0.nextSendAt) }
        compare("enabled") { .bool($0.enabled) }
        compare("paused_note") { $0.pausedNote.map(JSONValue.string) ?? .null }
        compare("start_at") { time($0.window.start) }
        compare("end_at") { time($0.window.end) }
        compare("catchup_window") { $0.catchupWindow.map(JSONValue.int) ?? .null }
        compare("overlap") { old == nil && $0.overlap == .allow ? .null : .string($0.overlap.rawValue) }
        compare("dst_gap") { old == nil && $0.daylightSaving.gap == .skip ? .null : .string($0.daylightSaving.gap.rawValue) }
        compare("dst_overlap") {
            old == nil && $0.daylightSaving.overlap == .first ? .null : .string($0.daylightSaving.overlap.rawValue)
        }
        compare("jitter") { old == nil && $0.jitter == 0 ? .null : .int($0.jitter) }
        return changes
    }

    /// The action a change is recorded as: a pause or a resume when `enabled` flipped, else
    /// a change.
    public static func action(from old: ScheduleFields, to new: ScheduleFields) -> String {
        if old.enabled && !new.enabled { return "paused" }
        if !old.enabled && new.enabled { return "resumed" }
        return "changed"
    }
}
