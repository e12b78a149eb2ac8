import Foundation

/// What a schedule does with an occurrence due while its previous one is still being
/// delivered (queued, in flight or being retried).
public enum OverlapPolicy: String, Sendable, CaseIterable {
    /// Sent as usual, beside it (the original's behaviour).
    case allow
    /// Recorded as skipped, not sent.
    case skip
    /// Waits until the previous one is done, then is sent; a third while one waits is skipped.
    case bufferOne = "buffer_one"
}

/// What beat does with one schedule found due: which occurrence it sends (if any), which it
/// records as missed or skipped, the schedule's next run, whether it stays enabled, and its
/// run count.
public struct ScheduleFiring: Sendable, Equatable {
    /// The occurrence to send now (or, with `buffered`, once the previous one is done).
    public var send: Date?
    /// `send` waits behind the schedule's occurrence still being delivered (`buffer_one`).
    public var buffered: Bool
    /// The occurrence found due longer ago than the catch-up window: recorded, not sent.
    public var missed: Date?
    /// The occurrence due while the previous one was still being delivered: recorded, not sent.
    public var skipped: Date?
    public var next: Date?
    public var enabled: Bool
    public var triggered: Int

    public init(
        send: Date?, buffered: Bool = false, missed: Date? = nil, skipped: Date? = nil, next: Date?, enabled: Bool, triggered: Int
    ) {
        self.send = send
        self.buffered = buffered
        self.missed = missed
        self.skipped = skipped
        self.next = next
        self.enabled = enabled
        self.triggered = triggered
    }

    /// The schedule's occurrences not done yet when another falls due.
    public struct InFlight: Sendable, Equatable {
        /// Queued, in flight or being retried.
        public var pending: Int
        /// Waiting behind one of those (`buffer_one`).
        public var buffered: Int

        public init(pending: Int = 0, buffered: Int = 0) {
            self.pending = pending
            self.buffered = buffered
        }
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
    ///
    /// With an `overlap` policy other than `allow`, an occurrence to send while `inFlight`
    /// holds the schedule's previous ones is skipped, or (`buffer_one`, none waiting yet)
    /// waits behind them. A skipped occurrence, like a missed one, is not a run.
    public static func fire(
        scheduled: Date, timing: ScheduleTiming, window: ScheduleWindow, catchupWindow: Int?, frequency: Int?,
        triggered: Int, now: Date, overlap: OverlapPolicy = .allow, inFlight: InFlight = InFlight()
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
        var skipped: Date?
        var buffered = false
        if let due = send {
            switch overlap {
            case .allow:
                break
            case .skip where inFlight.pending + inFlight.buffered > 0, .bufferOne where inFlight.buffered > 0:
                (skipped, send) = (due, nil)
            case .bufferOne where inFlight.pending > 0:
                buffered = true
            case .skip, .bufferOne:
                break
            }
        }
        // `triggered` is an integer column: at most 2^31 - 1, and the count stays there.
        let count = send == nil ? triggered : min(triggered, Int(Int32.max) - 1) + 1
        let exhausted = frequency.map { count >= $0 } ?? false
        // A next run is always after `now` (nextRun throws when it would not be).
        let next = exhausted ? nil : window.within(try timing.nextRun(afterFiring: send ?? skipped ?? scheduled, now: now))
        return ScheduleFiring(
            send: send, buffered: buffered, missed: missed, skipped: skipped, next: next, enabled: !exhausted, triggered: count)
    }
}
