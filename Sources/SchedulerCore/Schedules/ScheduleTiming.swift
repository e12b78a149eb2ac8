import Foundation

/// When a schedule runs: on a crontab in a zone, every interval, or only at the time a
/// client set (`none`: once at `next_send_at`, or never when that is empty).
public enum ScheduleTiming: Sendable, Equatable {
    case cron(CronExpression, TimeZone, DaylightSaving = .standard)
    case interval(IntervalDefinition)
    case none

    /// The definitions as validated by the API (they were checked just before): a
    /// definition that does not read is treated as none.
    public init(
        cronDefinition: String?, intervalDefinition: String?, timezone: String, daylightSaving: DaylightSaving = .standard
    ) {
        self =
            (try? Self.stored(
                cronDefinition: cronDefinition, intervalDefinition: intervalDefinition, timezone: timezone,
                daylightSaving: daylightSaving)) ?? .none
    }

    /// The definitions of a stored row, which may have been edited by hand: anything that
    /// does not read is an error with a reason (beat quarantines such a schedule).
    public static func stored(
        cronDefinition: String?, intervalDefinition: String?, timezone: String, daylightSaving: DaylightSaving = .standard
    ) throws(ScheduleTimingError) -> Self {
        let cron = cronDefinition.flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
        let interval = intervalDefinition.flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : $0 }
        switch (cron, interval) {
        case (.some, .some):
            throw ScheduleTimingError("both cron_definition and interval_definition are set")
        case (.some(let text), nil):
            let expression: CronExpression
            do {
                expression = try CronExpression(parsing: text)
            } catch {
                throw ScheduleTimingError("\(text) is not a valid crontab string: \(error.reason)")
            }
            guard let zone = TimeZone(identifier: timezone) else {
                throw ScheduleTimingError("\(timezone) is not a known IANA time zone")
            }
            return .cron(expression, zone, daylightSaving)
        case (nil, .some(let text)):
            guard let definition = IntervalDefinition(parsing: text) else {
                throw ScheduleTimingError("\(text) \(IntervalDefinition.errorSuffix)")
            }
            return .interval(definition)
        case (nil, nil):
            return .none
        }
    }

    public var isRecurring: Bool { self != .none }

    /// Why this timing is outside `limits`, or nil when it is within them.
    public func violation(of limits: ScheduleLimits) -> String? {
        guard case .interval(let interval) = self else { return nil }
        if interval.microseconds < limits.minimumInterval {
            return "the interval is shorter than the minimum of \(ScheduleLimits.describe(microseconds: limits.minimumInterval))"
                + (limits.minimumIntervalIsQuota ? " (your quota min_interval)" : "")
        }
        if interval.microseconds > limits.maximumInterval {
            return "the interval is longer than the maximum of \(ScheduleLimits.describe(microseconds: limits.maximumInterval))"
        }
        return nil
    }

    /// The next run strictly after `date`; nil when there is none, or when it would fall
    /// past 9999 (never a trap, whatever the date and interval).
    public func nextRun(after date: Date) -> Date? {
        switch self {
        case .cron(let cron, let zone, let daylightSaving):
            return cron.nextDate(after: date, in: zone, daylightSaving: daylightSaving)
        case .interval(let interval):
            let (next, overflow) = Timestamp.microseconds(date).addingReportingOverflow(interval.microseconds)
            guard !overflow, ScheduleLimits.contains(instant: next) else { return nil }
            // Far from 1970 a Date cannot tell microseconds apart: a run that does not advance is none.
            let nextDate = Timestamp.date(microseconds: next)
            return nextDate > date ? nextDate : nil
        case .none:
            return nil
        }
    }

    /// The run after the occurrence due at `scheduled`, fired at `now`. After downtime the
    /// missed runs are not made up: the next run is the first one after `now` (an interval
    /// keeps its cadence: `scheduled` plus a whole number of intervals). Nil when the
    /// schedule has no further run (a one-off, a crontab whose years are over); throws when
    /// the next run cannot be computed (it would fall outside 1970-9999), so that beat can
    /// quarantine the schedule instead of trapping or firing it again and again.
    public func nextRun(afterFiring scheduled: Date, now: Date) throws(ScheduleTimingError) -> Date? {
        switch self {
        case .cron(let cron, let zone, let daylightSaving):
            return cron.nextDate(after: max(scheduled, now), in: zone, daylightSaving: daylightSaving)
        case .interval(let interval):
            let start = Timestamp.microseconds(scheduled)
            let length = interval.microseconds
            guard length > 0 else { throw ScheduleTimingError("the interval is not positive") }
            let (elapsed, elapsedOverflow) = Timestamp.microseconds(now).subtractingReportingOverflow(start)
            guard !elapsedOverflow else { throw ScheduleTimingError("the scheduled time \(Timestamp.format(scheduled)) is out of range") }
            let steps = elapsed < length ? 1 : elapsed / length + 1
            let (offset, offsetOverflow) = steps.multipliedReportingOverflow(by: length)
            let (next, nextOverflow) = start.addingReportingOverflow(offset)
            guard !offsetOverflow, !nextOverflow, ScheduleLimits.contains(instant: next) else {
                throw ScheduleTimingError("the next run after \(Timestamp.format(scheduled)) falls after 9999-12-31")
            }
            let nextDate = Timestamp.date(microseconds: next)
            guard nextDate > now else {
                throw ScheduleTimingError("the next run does not advance past \(Timestamp.format(now)) (the interval is too short)")
            }
            return nextDate
        case .none:
            return nil
        }
    }
}

/// Why a stored schedule's next run cannot be computed.
public struct ScheduleTimingError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
