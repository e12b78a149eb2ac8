import Foundation

/// When a schedule runs: on a crontab in a zone, every interval, or only at the time a
/// client set (`none`: once at `next_send_at`, or never when that is empty).
public enum ScheduleTiming: Sendable, Equatable {
    case cron(CronExpression, TimeZone)
    case interval(IntervalDefinition)
    case none

    /// The definitions as stored; they were validated when written, so a failure here
    /// means the row was edited by hand, and the schedule is treated as one-off.
    public init(cronDefinition: String?, intervalDefinition: String?, timezone: String) {
        if let cronDefinition, let cron = try? CronExpression(parsing: cronDefinition),
            let zone = TimeZone(identifier: timezone)
        {
            self = .cron(cron, zone)
        } else if let intervalDefinition, let interval = IntervalDefinition(parsing: intervalDefinition) {
            self = .interval(interval)
        } else {
            self = .none
        }
    }

    public var isRecurring: Bool { self != .none }

    /// The next run strictly after `date`; nil when there is none.
    public func nextRun(after date: Date) -> Date? {
        switch self {
        case .cron(let cron, let zone):
            return cron.nextDate(after: date, in: zone)
        case .interval(let interval):
            return Timestamp.date(microseconds: Timestamp.microseconds(date) + interval.microseconds)
        case .none:
            return nil
        }
    }

    /// The run after the occurrence due at `scheduled`, fired at `now`. After downtime the
    /// missed runs are not made up: the next run is the first one after `now` (an interval
    /// keeps its cadence: `scheduled` plus a whole number of intervals).
    public func nextRun(afterFiring scheduled: Date, now: Date) -> Date? {
        switch self {
        case .cron(let cron, let zone):
            return cron.nextDate(after: max(scheduled, now), in: zone)
        case .interval(let interval):
            let start = Timestamp.microseconds(scheduled)
            let elapsed = Timestamp.microseconds(now) - start
            let steps = elapsed < interval.microseconds ? 1 : elapsed / interval.microseconds + 1
            return Timestamp.date(microseconds: start + steps * interval.microseconds)
        case .none:
            return nil
        }
    }
}
