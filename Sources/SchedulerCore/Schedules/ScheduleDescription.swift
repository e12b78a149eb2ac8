import Foundation

/// A schedule for people: its timing in words ("every Monday at 09:00, Europe/London") and
/// its next runs in its own time zone, with the runs after a change of the zone's UTC
/// offset (daylight saving) marked.
public enum ScheduleDescription {
    /// One upcoming run.
    public struct Run: Sendable, Equatable {
        public let at: Date
        /// The zone's offset from UTC at the run, in seconds.
        public let offsetSeconds: Int
        /// The offset differs from the one before (the previous run, or now for the first).
        public let offsetChanged: Bool
        /// What daylight saving did to it: `shifted` (its time was skipped; it runs when the
        /// clock jumps), `first` or `second` (its time is shown twice; this is that showing).
        public let daylightSaving: String?
    }

    /// The timing in words. Crontabs of the common shapes (a fixed time of day on every day,
    /// on some weekdays, or on one day of the month) read as sentences; others as the crontab.
    public static func words(_ timing: ScheduleTiming, cronText: String?, timezone: String, nextSendAt: Date?) -> String {
        switch timing {
        case .interval(let interval):
            let unit = String(interval.period.rawValue.dropLast())
            return interval.every == 1 ? "every \(unit)" : "every \(interval.every) \(interval.period.rawValue)"
        case .cron(let cron, _, _):
            return "\(cronWords(cron) ?? "on the crontab \"\(cronText ?? "")\""), \(timezone)"
        case .none:
            guard let nextSendAt else { return "never (no next run is set)" }
            return "once, at \(Timestamp.format(nextSendAt))"
        }
    }

    static let weekdayNames = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]

    static func bits(_ mask: UInt64, in range: ClosedRange<Int>) -> [Int] {
        range.filter { mask & (1 << UInt64($0)) != 0 }
    }

    /// 0...99 as two digits (hours and minutes here: no `String(format:)` with a Swift Int).
    static func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }

    static func cronWords(_ cron: CronExpression) -> String? {
        let minutes = bits(cron.minutes, in: 0...59)
        let hours = bits(cron.hours, in: 0...23)
        let months = bits(cron.months, in: 1...12)
        let days = bits(cron.daysOfMonth, in: 1...31)
        let weekdays = bits(cron.daysOfWeek, in: 0...6)
        guard cron.years == nil, months.count == 12 else { return nil }
        let time: String
        if minutes.count == 1, hours.count == 1 {
            time = "at \(twoDigits(hours[0])):\(twoDigits(minutes[0]))"
        } else if minutes.count == 1, hours.count == 24 {
            time = minutes[0] == 0 ? "every hour, on the hour" : "every hour at \(minutes[0]) minutes past"
        } else if minutes.count == 60, hours.count == 24 {
            time = "every minute"
        } else if minutes.count > 1, hours.count == 24, minutes.count < 60, 60 % minutes.count == 0,
            minutes == Array(stride(from: minutes[0], to: 60, by: 60 / minutes.count))
        {
            time = "every \(60 / minutes.count) minutes"
        } else {
            return nil
        }
        switch (cron.dayOfMonthRestricted, cron.dayOfWeekRestricted) {
        case (false, false):
            return time.hasPrefix("at") ? "every day \(time)" : time
        case (false, true):
            guard !weekdays.isEmpty else { return nil }
            if weekdays == [1, 2, 3, 4, 5] { return "every weekday (Monday to Friday) \(time)" }
            let names = weekdays.map { weekdayNames[$0] }
            let list = names.count == 1 ? names[0] : names.dropLast().joined(separator: ", ") + " and " + names.last!
            return "every \(list) \(time)"
        case (true, false):
            guard days.count == 1 else { return nil }
            return "on day \(days[0]) of every month \(time)"
        case (true, true):
            return nil
        }
    }

    /// The window in words, to follow the timing: ", from 2027-01-04T09:00:00Z until ...";
    /// empty when the schedule has none.
    public static func words(_ window: ScheduleWindow, now: Date) -> String {
        var text = ""
        if let start = window.start, start > now { text += ", from \(Timestamp.format(start))" }
        if let end = window.end {
            text += window.hasEnded(at: now) ? ", ended at \(Timestamp.format(end))" : ", until \(Timestamp.format(end))"
        }
        return text
    }

    /// Up to `count` runs from `first` (the stored next run) on, each in the schedule's zone,
    /// none after the window's end; for a one-off, just its time. `now` is the reference for
    /// the first offset change.
    public static func upcoming(
        _ timing: ScheduleTiming, first: Date?, zone: TimeZone, count: Int, now: Date, window: ScheduleWindow = ScheduleWindow()
    ) -> [Run] {
        guard let first = window.within(first), count > 0 else { return [] }
        var runs: [Run] = []
        var previousOffset = zone.secondsFromGMT(for: now)
        var next: Date? = first
        while let at = next, runs.count < count {
            let offset = zone.secondsFromGMT(for: at)
            runs.append(
                Run(
                    at: at, offsetSeconds: offset, offsetChanged: offset != previousOffset,
                    daylightSaving: effect(of: timing, at: at, in: zone)))
            previousOffset = offset
            next = window.within(timing.nextRun(after: at))
        }
        return runs
    }

    /// What daylight saving did to a crontab's run at `at` (see `Run.daylightSaving`).
    static func effect(of timing: ScheduleTiming, at: Date, in zone: TimeZone) -> String? {
        guard case .cron(let cron, _, _) = timing else { return nil }
        let wall = zone.wallSeconds(atUTC: Timestamp.seconds(at))
        let minute = wall - ((wall % 60) + 60) % 60
        if cron.nextWallMatch(from: minute) != minute { return "shifted" }
        let instants = zone.instants(atWall: wall)
        guard instants.count == 2 else { return nil }
        return Timestamp.seconds(at) == instants[0] ? "first" : "second"
    }

    /// `at` as local time in `zone` with its offset: `2026-03-29T09:00:00+01:00`.
    public static func local(_ at: Date, offsetSeconds: Int) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(secondsFromGMT: offsetSeconds)
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ssxxx"
        return formatter.string(from: at)
    }
}
