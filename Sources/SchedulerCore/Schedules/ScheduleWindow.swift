import Foundation

/// When a schedule may run at all: from `start` (inclusive) to `end` (inclusive). Its
/// stored next run always lies inside: computed runs before `start` move to the first one
/// at or after it, and a run after `end` is none (the schedule has ended).
public struct ScheduleWindow: Sendable, Equatable {
    public var start: Date?
    public var end: Date?

    public init(start: Date? = nil, end: Date? = nil) {
        self.start = start
        self.end = end
    }

    /// Whether `date` lies inside.
    public func contains(_ date: Date) -> Bool {
        (start.map { date >= $0 } ?? true) && (end.map { date <= $0 } ?? true)
    }

    /// Whether the window is over at `now`: it has an end and `now` is past it.
    public func hasEnded(at now: Date) -> Bool {
        end.map { now > $0 } ?? false
    }

    /// `timing`'s first run after `now` inside the window; nil when there is none. An
    /// interval that starts later runs first at `start` itself, then every interval after it.
    public func firstRun(of timing: ScheduleTiming, after now: Date) -> Date? {
        var next: Date?
        if let start, start > now {
            switch timing {
            case .interval: next = start
            case .cron: next = timing.nextRun(after: start.addingTimeInterval(-1e-6))
            case .none: next = nil
            }
        } else {
            next = timing.nextRun(after: now)
        }
        return within(next)
    }

    /// A computed run kept only when it is not after `end`.
    public func within(_ run: Date?) -> Date? {
        guard let run else { return nil }
        if let end, run > end { return nil }
        return run
    }
}

/// Jitter: an occurrence is sent at a deterministic offset after its due time, to spread a
/// crowd of schedules due at the top of the minute.
public enum ScheduleJitter {
    /// The longest jitter a schedule may ask for, in seconds.
    public static let maximumSeconds = 3_600

    /// The offset, whole milliseconds in `0...jitter` seconds, drawn from the delivery id's
    /// hash bits (bytes 8-15: bytes 0-5 are its time), so every attempt and every repeat of
    /// the occurrence has the same one.
    public static func offset(deliveryID: UUID, jitterSeconds: Int) -> TimeInterval {
        guard jitterSeconds > 0 else { return 0 }
        let bits = withUnsafeBytes(of: deliveryID.uuid) { bytes in bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
        let span = UInt64(min(jitterSeconds, maximumSeconds)) * 1_000 + 1
        return Double(bits % span) / 1_000
    }
}
