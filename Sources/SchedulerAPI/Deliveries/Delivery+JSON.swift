import SchedulerCore
import SchedulerStore

extension Delivery {
    /// A delivery record as `GET /api/v1/schedule/<id>/deliveries/` shows it.
    func json(_ links: Links) -> JSONValue {
        .object([
            "id": .string(id.lowercasedText),
            "schedule": scheduleID.map { .string(links.schedule($0)) } ?? .null,
            "kind": .string(kind.rawValue),
            "scheduled_for": .string(Timestamp.format(scheduledFor)),
            "state": .string(state.rawValue),
            "attempts": .int(attempts),
            "last_status": lastStatus.map(JSONValue.int) ?? .null,
            "last_error": lastError.map(JSONValue.string) ?? .null,
            "latency_ms": latencyMilliseconds.flatMap { $0.isFinite ? .number(String(format: "%.3f", $0)) : nil } ?? .null,
            "created_at": .string(Timestamp.format(createdAt)),
            "published_at": publishedAt.map { .string(Timestamp.format($0)) } ?? .null,
            "finished_at": finishedAt.map { .string(Timestamp.format($0)) } ?? .null,
            "origin": .string(origin.rawValue),
        ])
    }

    /// The original's failed task: `{url, id, schedule, task_id, initiated_at, reason}`.
    func failedTaskJSON(_ links: Links) -> JSONValue {
        let text = id.lowercasedText
        return .object([
            "url": .string(links.url("/api/v1/failed-tasks/\(text)/")),
            "id": .string(text),
            "schedule": scheduleID.map { .string(links.schedule($0)) } ?? .null,
            "task_id": .string(text),
            "initiated_at": .string(Timestamp.format(scheduledFor)),
            "reason": .string(lastError ?? lastStatus.map { "HTTP \($0)" } ?? "failed"),
        ])
    }
}
