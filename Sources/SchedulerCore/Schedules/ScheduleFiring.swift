import Foundation

/// What beat does with one schedule found due: which occurrence it sends (if any), which it
/// records as missed, the schedule's next run, whether it stays enabled, and its run count.
public struct ScheduleFiring: Sendable, Equatable {
    /// The occurrence to send now.
    public var send: Date?
    /// The occurrence found due longer ago than the catch-up window: recorded, not sent.
    public var missed: Date?
    public var next: Date?
    public var enabled: Bool
    public var triggered: Int

    public init(send: Date?, missed: Date? = nil, next: Date?, enabled: Bool, triggered: Int) {
        self.send = send
        self.missed = missed
        self.next = next
        self.enabled = enabled
        self.triggered = triggered
    }

    /// The schedule due at `scheduled`, fired at `now`.
    ///
    /// - Outside its window (a row changed by hand): nothing is sent; the next run is the
    ///   first inside it.
    /// - Due longer ago than `catchupWindow` seconds (beat was down): that occurrence is
    ///   missed; the first occurrence inside the catch-up window (at or after
    ///   `now - catchupWindow`), if it is due by now, is sent once in its place.
    /// - Otherwise the occurrence is sent, however late (the default: once, then continue).
    ///
    /// Then the next run is the first after `now` and inside the window, or none once
    /// `frequency` runs were sent. Throws when the next run cannot be computed (see
    /// `ScheduleTiming.nextRun(afterFiring:now:)`).
    public static func fire(
        scheduled: Date, timing: ScheduleTiming, window: ScheduleWindow, catchupWindow: Int?, frequency: Int?,
        triggered: Int, now: Date
    ) throws(ScheduleTimingError) -> ScheduleFiring {
        guard window.contains(scheduled) else {
            return ScheduleFiring(
                send: nil, next: timing.isRecurring ? window.firstRun(of: timing, after: now) : nil, enabled: true,
                triggered: triggered)
        }
        var send: Date? = scheduled
        var missed: Date?
        if let catchupWindow, now.timeIntervalSince(scheduled) > Double(catchupWindow) {
            missed = scheduled
            send = nil
            if timing.isRecurring {
                let earliest = now.addingTimeInterval(-Double(catchupWindow))
                if let candidate = try timing.nextRun(afterFiring: scheduled, now: earliest.addingTimeInterval(-1e-6)),
                    candidate <= now, window.contains(candidate)
                {
                    send = candidate
                }
            }
        }
        // `triggered` is an integer column: at most 2^31 - 1, and the count stays there.
        let count = send == nil ? triggered : min(triggered, Int(Int32.max) - 1) + 1
        let exhausted = frequency.map { count >= $0 } ?? false
        // A next run is always after `now` (nextRun throws when it would not be).
        let next = exhausted ? nil : window.within(try timing.nextRun(afterFiring: send ?? scheduled, now: now))
        return ScheduleFiring(send: send, missed: missed, next: next, enabled: !exhausted, triggered: count)
    }
}
