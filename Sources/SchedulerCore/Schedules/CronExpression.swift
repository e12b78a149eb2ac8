import Foundation

/// Why a crontab string was refused. The API shows it as
/// `"<value> is not a valid crontab string: <reason>"`.
public struct CronError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// A crontab schedule: `minute hour day-of-month month day-of-week [year]`, or one of
/// `@yearly @annually @monthly @weekly @daily @midnight @hourly`.
///
/// Fields take `*`, numbers, names (`jan`, `mon`), ranges (`1-5`), lists (`1,15`) and
/// steps (`*/15`, `10-40/10`, `5/20`). Day-of-week runs 0-7 with both 0 and 7 Sunday. As
/// in Vixie cron, when both day-of-month and day-of-week are restricted (neither starts
/// with `*`), a day matches if either does. `?` is read as `*` in the two day fields.
///
/// Times are wall-clock times in the schedule's zone: a time the clock skips (spring
/// forward) does not run; a time the clock shows twice (fall back) runs once, the first time.
public struct CronExpression: Sendable, Hashable {
    public let minutes: UInt64
    public let hours: UInt64
    public let daysOfMonth: UInt64
    public let months: UInt64
    public let daysOfWeek: UInt64
    /// Years 1970-2099 as offsets from 1970; nil when the year field is absent or `*`.
    public let years: Set<Int>?
    let dayOfMonthRestricted: Bool
    let dayOfWeekRestricted: Bool

    public static let yearRange = 1970...2099

    private static let aliases: [String: String] = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]
    private static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    private static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    public init(parsing text: String) throws(CronError) {
        var source = text.trimmingCharacters(in: .whitespaces)
        if source.hasPrefix("@") {
            guard let expanded = Self.aliases[source.lowercased()] else {
                throw CronError("unknown alias \(source) (use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)")
            }
            source = expanded
        }
        let fields = source.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { String($0).lowercased() }
        guard fields.count == 5 || fields.count == 6 else {
            throw CronError("expected 5 fields (minute hour day-of-month month day-of-week) and an optional year, got \(fields.count)")
        }
        minutes = try Self.parseField(fields[0], name: "minute", range: 0...59)
        hours = try Self.parseField(fields[1], name: "hour", range: 0...23)
        let dayOfMonthField = fields[2] == "?" ? "*" : fields[2]
        daysOfMonth = try Self.parseField(dayOfMonthField, name: "day-of-month", range: 1...31)
        months = try Self.parseField(fields[3], name: "month", range: 1...12, names: Self.monthNames, firstName: 1)
        let dayOfWeekField = fields[4] == "?" ? "*" : fields[4]
        var weekdays = try Self.parseField(dayOfWeekField, name: "day-of-week", range: 0...7, names: Self.dayNames, firstName: 0)
        if weekdays & (1 << 7) != 0 { weekdays = (weekdays | 1) & ~(1 << 7) }
        daysOfWeek = weekdays
        dayOfMonthRestricted = !dayOfMonthField.hasPrefix("*")
        dayOfWeekRestricted = !dayOfWeekField.hasPrefix("*")
        if fields.count == 6, fields[5] != "*" {
            var years = Set<Int>()
            for part in fields[5].split(separator: ",", omittingEmptySubsequences: false) {
                for year in try Self.parsePart(String(part), name: "year", range: Self.yearRange, names: [], firstName: 0) {
                    years.insert(year)
                }
            }
            self.years = years
        } else {
            years = nil
        }
        if !dayOfWeekRestricted || !dayOfMonthRestricted {
            // Only day-of-month decides (or neither): it must fall in some chosen month.
            let possible = (1...12).contains { month in
                months & (1 << month) != 0
                    && (1...(month == 2 ? 29 : CivilDateTime.daysInMonth(year: 2001, month: month))).contains {
                        daysOfMonth & (1 << $0) != 0
                    }
            }
            if !possible {
                throw CronError("no chosen month has the chosen day of the month")
            }
        }
    }

    private static func parseField(
        _ field: String, name: String, range: ClosedRange<Int>, names: [String] = [], firstName: Int = 0
    ) throws(CronError) -> UInt64 {
        var bits: UInt64 = 0
        for part in field.split(separator: ",", omittingEmptySubsequences: false) {
            for value in try parsePart(String(part), name: name, range: range, names: names, firstName: firstName) {
                bits |= 1 << value
            }
        }
        return bits
    }

    private static func parsePart(
        _ part: String, name: String, range: ClosedRange<Int>, names: [String], firstName: Int
    ) throws(CronError) -> [Int] {
        guard !part.isEmpty else { throw CronError("empty list item in the \(name) field") }
        let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
        guard pieces.count <= 2 else { throw CronError("more than one step in \(name) item '\(part)'") }
        var step = 1
        if pieces.count == 2 {
            guard let value = Int(pieces[1]), value > 0 else {
                throw CronError("step '\(pieces[1])' in the \(name) field must be a positive integer")
            }
            step = value
        }
        let base = String(pieces[0])
        let low: Int
        let high: Int
        if base == "*" {
            (low, high) = (range.lowerBound, range.upperBound)
        } else {
            let bounds = base.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count <= 2 else { throw CronError("bad range '\(base)' in the \(name) field") }
            low = try value(String(bounds[0]), name: name, range: range, names: names, firstName: firstName)
            if bounds.count == 2 {
                high = try value(String(bounds[1]), name: name, range: range, names: names, firstName: firstName)
                guard low <= high else { throw CronError("range \(base) in the \(name) field runs backwards") }
            } else {
                // `5/15` means from 5 to the end of the range, every 15.
                high = pieces.count == 2 ? range.upperBound : low
            }
        }
        return Array(stride(from: low, through: high, by: step))
    }

    private static func value(
        _ text: String, name: String, range: ClosedRange<Int>, names: [String], firstName: Int
    ) throws(CronError) -> Int {
        if let index = names.firstIndex(of: text) { return index + firstName }
        guard !text.isEmpty, text.allSatisfy(\.isASCII), let number = Int(text) else {
            throw CronError("'\(text)' is not a valid \(name) value")
        }
        guard range.contains(number) else {
            throw CronError("\(name) value \(number) is out of range \(range.lowerBound)-\(range.upperBound)")
        }
        return number
    }

    func matchesDay(_ wall: CivilDateTime) -> Bool {
        let dayOfMonth = daysOfMonth & (1 << wall.day) != 0
        let dayOfWeek = daysOfWeek & (1 << wall.weekday) != 0
        if dayOfMonthRestricted && dayOfWeekRestricted { return dayOfMonth || dayOfWeek }
        return dayOfMonth && dayOfWeek
    }

    /// The first time strictly after `date` at which this expression fires in `zone`, or
    /// nil when it never fires again (a year field in the past, or beyond 2099).
    public func nextDate(after date: Date, in zone: TimeZone, daylightSaving: DaylightSaving = .standard) -> Date? {
        let after = Timestamp.seconds(date)
        // Outside 1970-9999 there is nothing to find (and no arithmetic near Int64's edges).
        guard after >= ScheduleLimits.earliestInstant / 1_000_000 - 86_400, after < ScheduleLimits.latestInstant / 1_000_000
        else { return nil }
        // A time the clock shows twice may run at its second showing, after `date` although
        // its wall time is before `date`'s: the search then starts two hours back.
        let back: Int64 = daylightSaving.overlap == .first ? 0 : 7_200
        var wall = CivilDateTime(wallSeconds: zone.wallSeconds(atUTC: after - back))
        wall.second = 0
        var candidate = wall.wallSeconds + (back == 0 ? 60 : 0)
        while let matched = nextWallMatch(from: candidate) {
            // The instants the clock shows this time at, as the choices say (none when it skips it).
            if let instant = daylightSaving.instants(atWall: matched, in: zone).first(where: { Double($0) > date.timeIntervalSince1970 }) {
                return Date(timeIntervalSince1970: Double(instant))
            }
            candidate = matched + 60
        }
        return nil
    }

    /// The first wall time at or after `start` (a whole minute) that matches every field.
    func nextWallMatch(from start: Int64) -> Int64? {
        var wall = CivilDateTime(wallSeconds: start)
        let lastYear = min(years?.max() ?? wall.year + 30, 9999)
        while wall.year <= lastYear {
            if let years, !years.contains(wall.year) {
                wall = CivilDateTime(year: wall.year + 1, month: 1, day: 1)
                continue
            }
            if months & (1 << wall.month) == 0 {
                wall =
                    wall.month == 12
                    ? CivilDateTime(year: wall.year + 1, month: 1, day: 1)
                    : CivilDateTime(year: wall.year, month: wall.month + 1, day: 1)
                continue
            }
            if !matchesDay(wall) {
                wall = CivilDateTime(wallSeconds: CivilDateTime(year: wall.year, month: wall.month, day: wall.day).wallSeconds + 86_400)
                continue
            }
            if hours & (1 << wall.hour) == 0 {
                wall = CivilDateTime(
                    wallSeconds: CivilDateTime(year: wall.year, month: wall.month, day: wall.day, hour: wall.hour).wallSeconds + 3600)
                continue
            }
            if minutes & (1 << wall.minute) == 0 {
                wall = CivilDateTime(wallSeconds: wall.wallSeconds + 60)
                continue
            }
            return wall.wallSeconds
        }
        return nil
    }
}
