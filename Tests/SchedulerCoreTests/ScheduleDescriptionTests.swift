import Foundation
import SchedulerCore
import Testing

/// The console's "in words" and "next ten runs" for a schedule.
@Suite struct ScheduleDescriptionTests {
    static func words(cron: String? = nil, interval: String? = nil, zone: String = "UTC", next: Date? = nil) -> String {
        let timing = ScheduleTiming(cronDefinition: cron, intervalDefinition: interval, timezone: zone)
        return ScheduleDescription.words(timing, cronText: cron, timezone: zone, nextSendAt: next)
    }

    @Test(arguments: [
        ("0 9 * * 1", "Europe/London", "every Monday at 09:00, Europe/London"),
        ("30 7 * * 1-5", "UTC", "every weekday (Monday to Friday) at 07:30, UTC"),
        ("0 18 * * sat,sun", "UTC", "every Sunday and Saturday at 18:00, UTC"),
        ("0 9 * * 1,3,5", "UTC", "every Monday, Wednesday and Friday at 09:00, UTC"),
        ("0 0 1 * *", "Asia/Kolkata", "on day 1 of every month at 00:00, Asia/Kolkata"),
        ("15 14 * * *", "UTC", "every day at 14:15, UTC"),
        ("59 23 * * *", "UTC", "every day at 23:59, UTC"),
        ("5 0 * * *", "UTC", "every day at 00:05, UTC"),
        ("*/15 * * * *", "UTC", "every 15 minutes, UTC"),
        ("0 * * * *", "UTC", "every hour, on the hour, UTC"),
        ("@weekly", "UTC", "every Sunday at 00:00, UTC"),
        ("* * * * *", "UTC", "every minute, UTC"),
        // Shapes without a plain sentence read as the crontab.
        ("5 4 1 * 2", "UTC", "on the crontab \"5 4 1 * 2\", UTC"),
        ("0 9 * 1 *", "UTC", "on the crontab \"0 9 * 1 *\", UTC"),
        ("0 9,17 * * *", "UTC", "on the crontab \"0 9,17 * * *\", UTC"),
    ])
    func crontabsReadAsSentences(_ cron: String, _ zone: String, _ expected: String) {
        #expect(Self.words(cron: cron, zone: zone) == expected)
    }

    @Test func intervalsAndOneOffs() {
        #expect(Self.words(interval: "5 minutes") == "every 5 minutes")
        #expect(Self.words(interval: "1 hours") == "every hour")
        #expect(Self.words(interval: "1 day") == "every day")
        #expect(Self.words(next: date("2026-12-24T18:00:00Z")) == "once, at 2026-12-24T18:00:00Z")
        #expect(Self.words() == "never (no next run is set)")
    }

    @Test func theNextRunsAreInTheSchedulesZoneWithTheDaylightSavingChangeMarked() throws {
        // London goes from GMT to BST on Sunday 2026-03-29.
        let timing = ScheduleTiming(cronDefinition: "0 9 * * *", intervalDefinition: nil, timezone: "Europe/London")
        let runs = ScheduleDescription.upcoming(
            timing, first: date("2026-03-27T09:00:00Z"), zone: zone("Europe/London"), count: 4, now: date("2026-03-26T12:00:00Z"))
        #expect(
            runs.map { Timestamp.format($0.at) } == [
                "2026-03-27T09:00:00Z", "2026-03-28T09:00:00Z", "2026-03-29T08:00:00Z", "2026-03-30T08:00:00Z",
            ])
        #expect(runs.map(\.offsetChanged) == [false, false, true, false])
        #expect(runs.map { ScheduleDescription.local($0.at, offsetSeconds: $0.offsetSeconds) }[2] == "2026-03-29T09:00:00+01:00")
    }

    @Test func aOneOffHasOneRunAndExtremesStopQuietly() {
        let once = ScheduleDescription.upcoming(.none, first: date("2026-12-24T18:00:00Z"), zone: zone("UTC"), count: 10, now: Date())
        #expect(once.count == 1)
        #expect(ScheduleDescription.upcoming(.none, first: nil, zone: zone("UTC"), count: 10, now: Date()).isEmpty)
        #expect(ScheduleDescription.upcoming(.none, first: Date(), zone: zone("UTC"), count: 0, now: Date()).isEmpty)
        // An interval whose runs would pass the year 9999 ends there, without a trap.
        let timing = ScheduleTiming(cronDefinition: nil, intervalDefinition: "3650 days", timezone: "UTC")
        let late = ScheduleDescription.upcoming(timing, first: date("9990-01-01T00:00:00Z"), zone: zone("UTC"), count: 10, now: Date())
        #expect(!late.isEmpty && late.count < 10)
    }
}
