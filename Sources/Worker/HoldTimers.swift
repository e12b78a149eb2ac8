import Foundation

/// When the delivery loop wakes for held jobs: a tick at the next held job's due time (the
/// 100 ms clock is too coarse), and the reads' idle connections warmed `warmAhead` before
/// it, at most once a second. A pure value: the loop tells it the next due time after each
/// event and carries out what it answers.
struct HoldTimers: Equatable {
    enum Action: Equatable {
        /// (Re)start the alarm: a tick after `delay` seconds, for the job due at `at`.
        case alarm(at: Date, delay: Double)
        /// (Re)start the warm-up: warm the reads after `delay` seconds (`at` is when).
        case warm(at: Date, delay: Double)
    }

    /// How long before a held job's due time the reads' idle connections are warmed again
    /// (`DeliveryStore.warmReads`): anything that invalidated the server's plans and caches
    /// since their last read (autovacuum's `ANALYZE` of a partition, a partition created or
    /// dropped, a `TRUNCATE`) would otherwise cost the read at the due instant its planning
    /// and catalog loads.
    static let warmAhead = 0.05

    /// The due time the alarm is set for, and when the last warm-up was set to run.
    private(set) var alarm: Date?
    private(set) var warm: Date?

    /// What to (re)start now that the next held job is due at `nextHold`: the alarm when
    /// there is none, it is set for later, or it has passed; with it, a warm-up when the job
    /// is far enough ahead for one and none was set within the second before.
    mutating func plan(nextHold: Date?, now: Date) -> [Action] {
        guard let due = nextHold, alarm.map({ $0 > due || $0 <= now }) ?? true else { return [] }
        let delay = max(0, due.timeIntervalSince(now))
        alarm = due
        var actions = [Action.alarm(at: due, delay: delay)]
        let warmAt = due.addingTimeInterval(-Self.warmAhead)
        if delay > 2 * Self.warmAhead, warm.map({ warmAt.timeIntervalSince($0) >= 1 }) ?? true {
            warm = warmAt
            actions.append(.warm(at: warmAt, delay: delay - Self.warmAhead))
        }
        return actions
    }
}
