import Foundation
import Testing

@testable import Worker

/// When the delivery loop wakes for held jobs, decided without a clock.
@Suite("Held jobs' alarm and warm-up")
struct HoldTimersTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("nothing held: nothing set; a job held 2 s ahead: an alarm at its time and a warm-up 50 ms before")
    func firstJob() {
        var timers = HoldTimers()
        #expect(timers.plan(nextHold: nil, now: now).isEmpty)
        let due = now.addingTimeInterval(2)
        #expect(
            timers.plan(nextHold: due, now: now) == [
                .alarm(at: due, delay: 2), .warm(at: due.addingTimeInterval(-0.05), delay: 1.95),
            ])
        // The same job again (another event meanwhile): nothing new.
        #expect(timers.plan(nextHold: due, now: now.addingTimeInterval(0.5)).isEmpty)
    }

    @Test("an earlier job moves the alarm; a later one does not; a passed alarm is set again")
    func alarmMoves() {
        var timers = HoldTimers()
        let due = now.addingTimeInterval(5)
        _ = timers.plan(nextHold: due, now: now)
        let sooner = now.addingTimeInterval(3)
        #expect(timers.plan(nextHold: sooner, now: now).first == .alarm(at: sooner, delay: 3))
        #expect(timers.plan(nextHold: due, now: now).isEmpty, "a later job waits for the alarm set before it")
        // The alarm's time came (its tick handled the job); the next job sets it again.
        let after = now.addingTimeInterval(3)
        #expect(timers.plan(nextHold: due, now: after).first == .alarm(at: due, delay: 2))
    }

    @Test("a warm-up at most once a second, and none for a job due within twice the warm-up's lead")
    func warmUpsAreBounded() {
        var timers = HoldTimers()
        let first = now.addingTimeInterval(2)
        #expect(timers.plan(nextHold: first, now: now).count == 2)
        // An earlier job 0.5 s before: the alarm moves, the warm-up set a moment ago stays.
        let close = first.addingTimeInterval(-0.5)
        #expect(timers.plan(nextHold: close, now: now) == [.alarm(at: close, delay: 1.5)])
        // A job due in 62.5 ms: an alarm, but no warm-up (it would come too late to help).
        var fresh = HoldTimers()
        let soon = now.addingTimeInterval(0.0625)
        #expect(fresh.plan(nextHold: soon, now: now) == [.alarm(at: soon, delay: 0.0625)])
        // A job already due: an alarm at once.
        var late = HoldTimers()
        #expect(late.plan(nextHold: now.addingTimeInterval(-1), now: now).first == .alarm(at: now.addingTimeInterval(-1), delay: 0))
    }
}
