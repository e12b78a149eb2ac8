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
