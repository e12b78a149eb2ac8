import Foundation
import SchedulerCore
import Testing

@Suite("Cron expressions: parsing")
struct CronParsingTests {
    @Test("five fields, ranges, lists and steps")
    func fields() throws {
        #expect(
            try runs("*/15 * * * *", after: "2026-01-01T00:00:00Z", count: 3)
                == ["2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z", "2026-01-01T00:45:00Z"])
        #expect(
            try runs("10-40/10 8 * * *", after: "2026-01-01T08:15:00Z", count: 3)
                == ["2026-01-01T08:20:00Z", "2026-01-01T08:30:00Z", "2026-01-01T08:40:00Z"])
        #expect(
            try runs("5/20 0 * * *", after: "2026-01-01T00:00:00Z", count: 4)
                == ["2026-01-01T00:05:00Z", "2026-01-01T00:25:00Z", "2026-01-01T00:45:00Z", "2026-01-02T00:05:00Z"])
        #expect(
            try runs("0 9,17 * * *", after: "2026-01-01T10:00:00Z", count: 2)
                == ["2026-01-01T17:00:00Z", "2026-01-02T09:00:00Z"])
    }

    @Test("month and day names, either case")
    func names() throws {
        // 2026-01-05 is a Monday.
        #expect(
            try runs("0 9 * * MON-wed", after: "2026-01-04T00:00:00Z", count: 4)
                == ["2026-01-05T09:00:00Z", "2026-01-06T09:00:00Z", "2026-01-07T09:00:00Z", "2026-01-12T09:00:00Z"])
        #expect(
            try runs("0 0 1 jan,Jul *", after: "2026-01-01T00:00:00Z", count: 2)
                == ["2026-07-01T00:00:00Z", "2027-01-01T00:00:00Z"])
    }

    @Test("aliases")
    func aliases() throws {
        #expect(try runs("@hourly", after: "2026-01-01T00:30:00Z", count: 1) == ["2026-01-01T01:00:00Z"])
        #expect(try runs("@daily", after: "2026-01-01T00:30:00Z", count: 1) == ["2026-01-02T00:00:00Z"])
        #expect(try runs("@midnight", after: "2026-01-01T00:30:00Z", count: 1) == ["2026-01-02T00:00:00Z"])
        #expect(try runs("@weekly", after: "2026-01-01T00:30:00Z", count: 1) == ["2026-01-04T00:00:00Z"])
        #expect(try runs("@monthly", after: "2026-01-01T00:30:00Z", count: 1) == ["2026-02-01T00:00:00Z"])
        #expect(try runs("@yearly", after: "2026-01-01T00:30:00Z", count: 1) == ["2027-01-01T00:00:00Z"])
        #expect(try runs("@annually", after: "2026-01-01T00:30:00Z", count: 1) == ["2027-01-01T00:00:00Z"])
    }

    @Test("day 7 is Sunday like 0")
    func sundaySeven() throws {
        #expect(
            try runs("0 0 * * 7", after: "2026-01-01T00:00:00Z", count: 1) == runs("0 0 * * 0", after: "2026-01-01T00:00:00Z", count: 1))
        #expect(try runs("0 0 * * 7", after: "2026-01-01T00:00:00Z", count: 1) == ["2026-01-04T00:00:00Z"])
    }

    @Test("restricted day-of-month and day-of-week match either, as in Vixie cron")
    func dayOr() throws {
        // The 13th, or any Friday: 2026-02-06 (Fri), 2026-02-13 (Fri and 13th), 2026-02-20 (Fri).
        #expect(
            try runs("0 0 13 * 5", after: "2026-02-01T00:00:00Z", count: 4)
                == ["2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z", "2026-02-27T00:00:00Z"])
        // With day-of-week `*`, only the day of the month counts.
        #expect(try runs("0 0 13 * *", after: "2026-02-01T00:00:00Z", count: 1) == ["2026-02-13T00:00:00Z"])
    }

    @Test("the last days of months and leap days")
    func monthEnds() throws {
        #expect(try runs("0 0 31 * *", after: "2026-01-31T00:00:00Z", count: 2) == ["2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z"])
        #expect(try runs("0 12 29 2 *", after: "2026-01-01T00:00:00Z", count: 2) == ["2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z"])
    }

    @Test("an optional sixth field picks years")
    func years() throws {
        #expect(try runs("0 0 1 1 * 2028", after: "2026-06-01T00:00:00Z", count: 2) == ["2028-01-01T00:00:00Z"])
        #expect(
            try runs("0 0 1 1 * 2027-2029/2", after: "2026-06-01T00:00:00Z", count: 3)
                == ["2027-01-01T00:00:00Z", "2029-01-01T00:00:00Z"])
        #expect(try runs("0 0 1 1 * 2020", after: "2026-06-01T00:00:00Z", count: 1).isEmpty)
        #expect(try runs("30 6 * * * *", after: "2026-06-01T00:00:00Z", count: 1) == ["2026-06-01T06:30:00Z"])
    }

    @Test("the next run is strictly after the given time")
    func strictlyAfter() throws {
        #expect(try runs("0 9 * * *", after: "2026-01-01T09:00:00Z", count: 1) == ["2026-01-02T09:00:00Z"])
        #expect(try runs("0 9 * * *", after: "2026-01-01T08:59:59.999Z", count: 1) == ["2026-01-01T09:00:00Z"])
    }

    @Test(
        "bad expressions are refused with a reason",
        arguments: [
            ("* * * *", "expected 5 fields (minute hour day-of-month month day-of-week) and an optional year, got 4"),
            ("* * * * * * *", "expected 5 fields (minute hour day-of-month month day-of-week) and an optional year, got 7"),
            ("", "expected 5 fields (minute hour day-of-month month day-of-week) and an optional year, got 0"),
            ("60 * * * *", "minute value 60 is out of range 0-59"),
            ("* 24 * * *", "hour value 24 is out of range 0-23"),
            ("* * 0 * *", "day-of-month value 0 is out of range 1-31"),
            ("* * * 13 *", "month value 13 is out of range 1-12"),
            ("* * * * 8", "day-of-week value 8 is out of range 0-7"),
            ("* * * * * 1969", "year value 1969 is out of range 1970-2099"),
            ("*/0 * * * *", "step '0' in the minute field must be a positive integer"),
            ("5-1 * * * *", "range 5-1 in the minute field runs backwards"),
            ("a * * * *", "'a' is not a valid minute value"),
            ("1,,2 * * * *", "empty list item in the minute field"),
            ("* * * foo *", "'foo' is not a valid month value"),
            ("@reboot", "unknown alias @reboot (use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)"),
            ("0 0 30 2 *", "no chosen month has the chosen day of the month"),
            ("1/2/3 * * * *", "more than one step in minute item '1/2/3'"),
            ("-1 * * * *", "'' is not a valid minute value"),
        ])
    func refused(expression: String, reason: String) {
        #expect(throws: CronError(reason)) { try CronExpression(parsing: expression) }
    }
}

@Suite("Cron expressions: time zones and daylight saving")
struct CronTimeZoneTests {
    @Test("a daily time stays on the local clock across the change of offset")
    func localClock() throws {
        // New York moves from UTC-5 to UTC-4 on 2026-03-08.
        #expect(
            try runs("0 9 * * *", in: "America/New_York", after: "2026-03-06T15:00:00Z", count: 3)
                == ["2026-03-07T14:00:00Z", "2026-03-08T13:00:00Z", "2026-03-09T13:00:00Z"])
    }

    @Test("New York: a time the clock skips in spring does not run that day")
    func newYorkSpring() throws {
        // 2026-03-08 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist that day.
        #expect(
            try runs("30 2 * * *", in: "America/New_York", after: "2026-03-07T12:00:00Z", count: 2)
                == ["2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"])
    }

    @Test("New York: a time the clock shows twice in autumn runs once")
    func newYorkAutumn() throws {
        // 2026-11-01 02:00 EDT goes back to 01:00 EST: 01:30 happens at 05:30Z and 06:30Z.
        #expect(
            try runs("30 1 * * *", in: "America/New_York", after: "2026-10-31T12:00:00Z", count: 2)
                == ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"])
    }

    @Test("London: spring gap and autumn overlap")
    func london() throws {
        // 2026-03-29 01:00 GMT jumps to 02:00 BST.
        #expect(try runs("30 1 * * *", in: "Europe/London", after: "2026-03-28T12:00:00Z", count: 1) == ["2026-03-30T00:30:00Z"])
        // 2026-10-25 02:00 BST goes back to 01:00 GMT.
        #expect(
            try runs("30 1 * * *", in: "Europe/London", after: "2026-10-24T12:00:00Z", count: 2)
                == ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"])
    }

    @Test("London: a half-hourly schedule skips the repeated hour's wall times")
    func londonHalfHourly() throws {
        #expect(
            try runs("*/30 * * * *", in: "Europe/London", after: "2026-10-24T23:45:00Z", count: 4)
                == ["2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z", "2026-10-25T02:30:00Z"])
    }

    @Test("Sydney: the southern hemisphere's changes")
    func sydney() throws {
        // 2026-04-05 03:00 AEDT goes back to 02:00 AEST: 02:30 runs once, at the first (AEDT, UTC+11).
        #expect(
            try runs("30 2 * * *", in: "Australia/Sydney", after: "2026-04-04T00:00:00Z", count: 2)
                == ["2026-04-04T15:30:00Z", "2026-04-05T16:30:00Z"])
        // 2026-10-04 02:00 AEST jumps to 03:00 AEDT: 02:30 is skipped that day.
        #expect(
            try runs("30 2 * * *", in: "Australia/Sydney", after: "2026-10-02T12:00:00Z", count: 2)
                == ["2026-10-02T16:30:00Z", "2026-10-04T15:30:00Z"])
    }

    @Test("zones with half-hour offsets")
    func kolkata() throws {
        #expect(try runs("0 9 * * *", in: "Asia/Kolkata", after: "2026-01-01T00:00:00Z", count: 1) == ["2026-01-01T03:30:00Z"])
    }

    @Test("wall-clock instants in gaps and overlaps")
    func instants() {
        let newYork = zone("America/New_York")
        let gap = CivilDateTime(year: 2026, month: 3, day: 8, hour: 2, minute: 30).wallSeconds
        #expect(newYork.instants(atWall: gap).isEmpty)
        let overlap = CivilDateTime(year: 2026, month: 11, day: 1, hour: 1, minute: 30).wallSeconds
        #expect(
            newYork.instants(atWall: overlap).map { Timestamp.format(Date(timeIntervalSince1970: Double($0))) }
                == ["2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z"])
    }
}
