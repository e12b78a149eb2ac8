import Foundation
import Testing

@testable import SchedulerCore

/// A crontab's choices for a local time the clock skips or shows twice (New York, 2027:
/// the clock jumps from 02:00 to 03:00 on 14 March and goes back from 02:00 to 01:00 on
/// 7 November).
@Suite("Daylight-saving choices")
struct DaylightSavingTests {
    let york = TimeZone(identifier: "America/New_York")!

    func date(_ text: String) -> Date { Timestamp.parse(text)! }

    func next(_ cron: String, after: String, _ choices: DaylightSaving) throws -> String? {
        try CronExpression(parsing: cron).nextDate(after: date(after), in: york, daylightSaving: choices).map(Timestamp.format)
    }

    @Test("a time the clock skips: no run that day (skip, the original's rule), or a run when the clock jumps (shift)")
    func gap() throws {
        #expect(try next("30 2 * * *", after: "2027-03-14T05:00:00Z", DaylightSaving(gap: .skip)) == "2027-03-15T06:30:00Z")
        #expect(try next("30 2 * * *", after: "2027-03-14T05:00:00Z", DaylightSaving(gap: .shift)) == "2027-03-14T07:00:00Z")
        // Every quarter hour: the skipped ones make one run at the jump, not four.
        let choices = DaylightSaving(gap: .shift)
        var runs: [String] = []
        var after = "2027-03-14T06:40:00Z"  // 01:40 EST
        for _ in 0..<4 {
            guard let run = try next("*/15 * * * *", after: after, choices) else { break }
            runs.append(run)
            after = run
        }
        #expect(runs == ["2027-03-14T06:45:00Z", "2027-03-14T07:00:00Z", "2027-03-14T07:15:00Z", "2027-03-14T07:30:00Z"])
        #expect(york.gapEnd(atWall: CivilDateTime(year: 2027, month: 3, day: 14, hour: 2, minute: 30).wallSeconds) == 1_805_007_600)
        #expect(york.gapEnd(atWall: CivilDateTime(year: 2027, month: 3, day: 14, hour: 3, minute: 30).wallSeconds) == nil)
    }

    @Test("a time the clock shows twice: the first showing (the original's rule), the second, or both")
    func overlap() throws {
        let after = "2027-11-07T04:00:00Z"  // 00:00 EDT
        #expect(try next("30 1 * * *", after: after, DaylightSaving(overlap: .first)) == "2027-11-07T05:30:00Z")
        #expect(try next("30 1 * * *", after: after, DaylightSaving(overlap: .second)) == "2027-11-07T06:30:00Z")
        let both = DaylightSaving(overlap: .both)
        #expect(try next("30 1 * * *", after: after, both) == "2027-11-07T05:30:00Z")
        #expect(try next("30 1 * * *", after: "2027-11-07T05:30:00Z", both) == "2027-11-07T06:30:00Z")
        #expect(try next("30 1 * * *", after: "2027-11-07T06:30:00Z", both) == "2027-11-08T06:30:00Z")
        #expect(try next("30 1 * * *", after: "2027-11-07T05:30:00Z", DaylightSaving(overlap: .first)) == "2027-11-08T06:30:00Z")
        // A time shown once is unaffected by the choice.
        #expect(try next("30 3 * * *", after: after, DaylightSaving(overlap: .second)) == "2027-11-07T08:30:00Z")
    }

    @Test("the runs say what each choice did: shifted, and first or second of a time shown twice")
    func runs() throws {
        let shift = ScheduleTiming.cron(try CronExpression(parsing: "30 2 * * *"), york, DaylightSaving(gap: .shift))
        let spring = ScheduleDescription.upcoming(
            shift, first: date("2027-03-14T07:00:00Z"), zone: york, count: 2, now: date("2027-03-13T12:00:00Z"))
        #expect(spring.map(\.daylightSaving) == ["shifted", nil])
        let both = ScheduleTiming.cron(try CronExpression(parsing: "30 1 * * *"), york, DaylightSaving(overlap: .both))
        let autumn = ScheduleDescription.upcoming(
            both, first: date("2027-11-07T05:30:00Z"), zone: york, count: 3, now: date("2027-11-06T12:00:00Z"))
        #expect(autumn.map { Timestamp.format($0.at) } == ["2027-11-07T05:30:00Z", "2027-11-07T06:30:00Z", "2027-11-08T06:30:00Z"])
        #expect(autumn.map(\.daylightSaving) == ["first", "second", nil])
    }

    @Test("bad choices are a 400 naming the field and the choices")
    func validation() {
        let result = ScheduleValidation.fields(
            from: try! JSONParser.parse(#"{"endpoint":"http://e.org","dst_gap":"later","dst_overlap":3}"#), existing: nil, partial: false,
            now: Date())
        guard case .failure(let errors) = result else {
            Issue.record("accepted")
            return
        }
        #expect(errors.messages(for: "dst_gap") == [#""later" is not a valid choice: one of skip, shift."#])
        #expect(errors.messages(for: "dst_overlap") == [#""3" is not a valid choice: one of first, second, both."#])
    }
}
