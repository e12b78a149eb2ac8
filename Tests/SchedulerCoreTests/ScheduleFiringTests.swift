import Foundation
import Testing

@testable import SchedulerCore

/// What beat does with a schedule found due: its window and its catch-up window.
@Suite("Schedule firing: windows and catch-up")
struct ScheduleFiringTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)  // 2027-01-15T08:00:00Z
    var minutely: ScheduleTiming { .interval(IntervalDefinition(parsing: "1 minutes")!) }

    func fire(
        scheduled: Date, timing: ScheduleTiming? = nil, window: ScheduleWindow = ScheduleWindow(), catchup: Int? = nil,
        frequency: Int? = nil, triggered: Int = 0, now: Date, inFlight: ScheduleFiring.InFlight = .init()
    ) throws -> ScheduleFiring {
        try ScheduleFiring.fire(
            scheduled: scheduled, timing: timing ?? minutely, window: window, catchupWindow: catchup, frequency: frequency,
            triggered: triggered, now: now, inFlight: inFlight)
    }

    @Test("without a catch-up window the occurrence found due is sent however late, then the next after now (as before)")
    func onceThenContinue() throws {
        let fired = try fire(scheduled: t0, now: t0.addingTimeInterval(3 * 3_600 + 10))
        #expect(fired.send == t0 && fired.missed == nil && fired.triggered == 1 && fired.enabled)
        #expect(fired.next == t0.addingTimeInterval(3 * 3_600 + 60))
    }

    @Test("older than the catch-up window: recorded as missed, and the first occurrence inside the window sent once in its place")
    func catchUp() throws {
        let now = t0.addingTimeInterval(3_600 + 25)  // an hour of downtime
        let fired = try fire(scheduled: t0, catchup: 300, now: now)
        #expect(fired.missed == t0)
        // The first of the cadence at or after now - 300 s: 08:56:00 (now is 09:00:25).
        #expect(fired.send == t0.addingTimeInterval(3_600 - 240))
        #expect(fired.triggered == 1)
        #expect(fired.next == t0.addingTimeInterval(3_660))

        // A crontab: the same rule.
        let cron = ScheduleTiming.cron(try CronExpression(parsing: "*/10 * * * *"), TimeZone(identifier: "UTC")!)
        let cronFired = try fire(scheduled: t0, timing: cron, catchup: 900, now: now)
        #expect(cronFired.missed == t0 && cronFired.send == t0.addingTimeInterval(3_000))
        #expect(cronFired.next == t0.addingTimeInterval(4_200))

        // No occurrence inside the window (a daily schedule two days late): only the miss.
        let daily = ScheduleTiming.interval(IntervalDefinition(parsing: "1 days")!)
        let dailyFired = try fire(scheduled: t0, timing: daily, catchup: 600, now: t0.addingTimeInterval(2 * 86_400 + 3_600))
        #expect(dailyFired.missed == t0 && dailyFired.send == nil && dailyFired.triggered == 0)
        #expect(dailyFired.next == t0.addingTimeInterval(3 * 86_400))

        // A one-off past its window: missed, never sent, no next run.
        let once = try fire(scheduled: t0, timing: ScheduleTiming.none, catchup: 60, now: t0.addingTimeInterval(61))
        #expect(once.missed == t0 && once.send == nil && once.next == nil)
    }

    @Test("within the catch-up window it is sent as due")
    func withinCatchUp() throws {
        let fired = try fire(scheduled: t0, catchup: 300, now: t0.addingTimeInterval(299))
        #expect(fired.send == t0 && fired.missed == nil)
    }

    @Test("an end ends the runs; a run after it is none, and the schedule stays enabled without a next run")
    func end() throws {
        let window = ScheduleWindow(end: t0.addingTimeInterval(90))
        let first = try fire(scheduled: t0, window: window, now: t0)
        #expect(first.send == t0 && first.next == t0.addingTimeInterval(60))
        let last = try fire(scheduled: t0.addingTimeInterval(60), window: window, now: t0.addingTimeInterval(60))
        #expect(last.send == t0.addingTimeInterval(60) && last.next == nil && last.enabled)
    }

    @Test("an occurrence outside the window (a row changed by hand) is not sent; the next run is the first inside")
    func outside() throws {
        let start = t0.addingTimeInterval(600)
        let fired = try fire(scheduled: t0, window: ScheduleWindow(start: start), now: t0)
        #expect(fired.send == nil && fired.missed == nil && fired.triggered == 0)
        #expect(fired.next == start)
        let after = try fire(scheduled: t0, window: ScheduleWindow(end: t0.addingTimeInterval(-1)), now: t0)
        #expect(after.send == nil && after.next == nil)
    }

    @Test("frequency counts what was sent: a miss does not use up a run")
    func frequency() throws {
        let missedOnly = try fire(
            scheduled: t0, timing: .interval(IntervalDefinition(parsing: "1 days")!), catchup: 60, frequency: 1,
            now: t0.addingTimeInterval(3_600))
        #expect(missedOnly.send == nil && missedOnly.enabled && missedOnly.triggered == 0)
        let last = try fire(scheduled: t0, frequency: 3, triggered: 2, now: t0)
        #expect(last.send == t0 && !last.enabled && last.next == nil && last.triggered == 3)
    }

    @Test("a window's first run: an interval starts at start_at itself, a crontab at its first time at or after it")
    func firstRun() {
        let start = t0.addingTimeInterval(3_600 + 17)
        let window = ScheduleWindow(start: start, end: start.addingTimeInterval(3_600))
        #expect(window.firstRun(of: minutely, after: t0) == start)
        let cron = ScheduleTiming.cron(try! CronExpression(parsing: "*/15 * * * *"), TimeZone(identifier: "UTC")!)
        #expect(window.firstRun(of: cron, after: t0) == t0.addingTimeInterval(3_600 + 900))
        #expect(ScheduleWindow(start: t0.addingTimeInterval(900)).firstRun(of: cron, after: t0) == t0.addingTimeInterval(900), "inclusive")
        // Started already: the next run after now.
        #expect(ScheduleWindow(start: t0.addingTimeInterval(-60)).firstRun(of: minutely, after: t0) == t0.addingTimeInterval(60))
        // Past the end: none.
        #expect(ScheduleWindow(end: t0.addingTimeInterval(30)).firstRun(of: minutely, after: t0) == nil)
        #expect(window.contains(start) && window.contains(start.addingTimeInterval(3_600)))
        #expect(!window.contains(start.addingTimeInterval(-0.001)) && !window.contains(start.addingTimeInterval(3_600.001)))
    }

    @Test("overlap: skip records the occurrence as skipped while one is in flight; buffer_one lets one wait, then skips; allow sends")
    func overlap() throws {
        let busy = ScheduleFiring.InFlight(pending: 1)
        let allow = try fire(scheduled: t0, triggered: 4, now: t0, inFlight: busy)
        #expect(allow.send == t0 && !allow.buffered && allow.skipped == nil && allow.triggered == 5)
        let skip = try ScheduleFiring.fire(
            scheduled: t0, timing: minutely, window: ScheduleWindow(), catchupWindow: nil, frequency: 5, triggered: 4, now: t0,
            overlap: .skip, inFlight: busy)
        #expect(skip.send == nil && skip.skipped == t0 && skip.triggered == 4 && skip.enabled, "a skip is not a run")
        #expect(skip.next == t0.addingTimeInterval(60))
        let idle = try ScheduleFiring.fire(
            scheduled: t0, timing: minutely, window: ScheduleWindow(), catchupWindow: nil, frequency: nil, triggered: 0, now: t0,
            overlap: .skip, inFlight: ScheduleFiring.InFlight())
        #expect(idle.send == t0 && idle.skipped == nil)
        let waits = try ScheduleFiring.fire(
            scheduled: t0, timing: minutely, window: ScheduleWindow(), catchupWindow: nil, frequency: nil, triggered: 0, now: t0,
            overlap: .bufferOne, inFlight: busy)
        #expect(waits.send == t0 && waits.buffered && waits.triggered == 1)
        let third = try ScheduleFiring.fire(
            scheduled: t0, timing: minutely, window: ScheduleWindow(), catchupWindow: nil, frequency: nil, triggered: 1, now: t0,
            overlap: .bufferOne, inFlight: ScheduleFiring.InFlight(pending: 1, buffered: 1))
        #expect(third.send == nil && third.skipped == t0 && third.triggered == 1)
    }

    @Test("jitter: an offset in [0, jitter] from the delivery id, the same every time, spread over the range")
    func jitter() {
        let ids = (0..<500).map { DeliveryIDs.derived($0) }
        let offsets = ids.map { ScheduleJitter.offset(deliveryID: $0, jitterSeconds: 30) }
        #expect(offsets.allSatisfy { (0...30).contains($0) })
        #expect(offsets == ids.map { ScheduleJitter.offset(deliveryID: $0, jitterSeconds: 30) }, "deterministic")
        #expect(Set(offsets).count > 450, "spread, not clumped")
        // Each third of the range holds about a third of them.
        for third in 0..<3 {
            let count = offsets.filter { $0 >= Double(third) * 10 && $0 < Double(third + 1) * 10 }.count
            #expect((110...220).contains(count), "third \(third): \(count)")
        }
        #expect(ScheduleJitter.offset(deliveryID: ids[0], jitterSeconds: 0) == 0)
        #expect(ScheduleJitter.offset(deliveryID: ids[0], jitterSeconds: Int.max) <= Double(ScheduleJitter.maximumSeconds))
        #expect(ScheduleJitter.offset(deliveryID: ids[0], jitterSeconds: -5) == 0)
    }
}

/// Ids shaped as delivery ids are (a time, then hash bits), without the store's module.
enum DeliveryIDs {
    static func derived(_ n: Int) -> UUID {
        var generator = SeededRandom(seed: UInt64(n) &+ 0x9E37_79B9)
        var bytes = (0..<16).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        bytes[6] = (bytes[6] & 0x0F) | 0x80
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        return UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10],
                bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
    }
}
