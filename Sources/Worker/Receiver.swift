import DeliveryQueues
import Foundation
import SchedulerCore

/// One receiver of deliveries, as the worker sees it: a scheme, host and port. Every
/// receiver has its own requests in flight, its own adaptive limit on them, its own pause
/// (from `Retry-After`) and its own circuit breaker, so that one that is slow, overloaded
/// or down never holds up another. A pure value: the time comes with each call.
struct Receiver {
    struct Settings: Sendable, Equatable {
        /// Requests in flight at most (RECEIVER_CONCURRENCY); the adaptive limit moves below it.
        var maximumConcurrency: Int = 64
        /// The limit a receiver starts at (or `maximumConcurrency`, if lower): more is earned
        /// by quick good answers while the limit is what holds its jobs back; a slow receiver
        /// (answers `slowRequest` or slower) gets no more than this.
        var initialConcurrency: Int = 8
        /// Seconds of nothing but failures (and at least `minimumFailures`) before the breaker opens.
        var openAfter: Double = 60
        var minimumFailures: Int = 5
        /// Seconds between probes of an open receiver.
        var probeInterval: Double = 30
        /// The longest pause a `Retry-After` may ask for (RECEIVER_MAX_PAUSE).
        var maximumPause: Double = 300
    }

    enum Breaker: String, Sendable, Equatable, CaseIterable {
        case closed
        case open
        case halfOpen = "half-open"
    }

    /// What to do with a job that is ready to be POSTed.
    enum Admission: Equatable {
        /// POST it now (`probe`: it tests an open receiver).
        case start(probe: Bool)
        /// Keep it: a request slot frees soon.
        case wait
        /// Give its prefetch slot back: park it in the broker for a while.
        case park(ParkReason)
    }

    enum ParkReason: String, Sendable, Equatable, CaseIterable {
        /// At its limit, with enough jobs already waiting in the worker.
        case capacity
        /// Paused by its `Retry-After`.
        case paused
        /// Its circuit breaker is open (or was opened by hand).
        case open
    }

    /// How an attempt ended, for the receiver's sake.
    enum Answer: Equatable {
        /// A 2xx or 3xx.
        case success
        /// It answered, and refused the job (a 4xx other than 408 and 429): alive and well.
        case refused
        /// No answer, a timeout, a 5xx, 408 or 429: the receiver failed.
        case failed(overloaded: Bool)

        init(status: Int?, timedOut: Bool) {
            guard let status else {
                self = .failed(overloaded: timedOut)
                return
            }
            switch status {
            case 200..<400: self = .success
            case 429, 503: self = .failed(overloaded: true)
            case 408, 500...: self = .failed(overloaded: false)
            default: self = .refused
            }
        }
    }

    /// A change of the breaker's state, to log, count and announce.
    struct Transition: Equatable {
        let from: Breaker
        let to: Breaker
        let reason: String
    }

    let key: String
    private(set) var limit: Double
    /// When each request in flight was sent, oldest first (a FIFO: an answer takes the oldest,
    /// and an array's `removeFirst()` would move every other one, up to 10,000 with a
    /// concurrency set by hand).
    private(set) var starts = FIFO<Date>() { didSet { noteBusy() } }
    /// Since when it has had requests in flight (or jobs waiting) without a break.
    private(set) var busySince: Date?
    /// When a job held until its due time found it idle: the start of a burst the worker held
    /// (see `heldGrace`).
    private(set) var heldBurstSince: Date?

    /// Busy from its first request in flight until it has none and nothing waits.
    private mutating func noteBusy() {
        if starts.isEmpty, waiting.isEmpty {
            busySince = nil
            answersWhileBusy = 0
        } else if busySince == nil, let first = starts.first {
            busySince = first
        }
    }
    var inFlight: Int { starts.count }
    /// Jobs (delivery tags) waiting in the worker for a request slot, oldest first.
    private(set) var waiting: FIFO<UInt64> = [] { didSet { noteBusy() } }
    private(set) var pausedUntil: Date?
    private(set) var breaker = Breaker.closed
    /// Opened by an operator: stays open, with no probes, until closed by hand.
    private(set) var heldOpen = false
    private(set) var failingSince: Date?
    private(set) var failures = 0
    private(set) var nextProbe: Date?
    private(set) var probing = false
    private var lastDecrease: Date?
    /// The receiver's usual answer time (a slow average of good answers): an answer much
    /// slower than it is a sign of overload, like a 429 or a 503.
    private(set) var usualAnswer: Double?
    /// Its fastest good answer lately (a minimum that slowly forgets): the answer time of a
    /// receiver that is not queueing requests. A good answer earns a higher limit only when
    /// it came back within twice this and 10 ms: one that keeps more requests waiting inside
    /// the receiver gains it nothing.
    private(set) var fastestAnswer: Double?
    private var goodAnswers = 0
    /// Recent success rate and answer time (exponentially weighted).
    private(set) var successRate: Double?
    private(set) var latency: Double?
    /// Jobs parked lately (to say how many wait in the broker), counted by tenth of a second
    /// (of the clock), oldest first, for `parkMemory` seconds: each park is asked how many
    /// went in the last second, so a list of park times would be counted through for each
    /// of the 50,000 a burst can park at one instant.
    private var parks = TenthCounts(seconds: Receiver.parkMemory)
    /// Answers counted by tenth of a second (of the clock), the last few seconds only.
    private var answers = TenthCounts(seconds: Receiver.answerMemory)
    /// Answers since it last became busy (`busySince`).
    private var answersWhileBusy = 0
    private var lastAnswer: Date?
    private(set) var lastActivity: Date
    /// When the breaker last changed state.
    private(set) var changedAt: Date?
    /// This worker's share of an admin's limits (`ReceiverLimits.share`): a concurrency set
    /// by hand replaces the adaptive limit; a rate is a bucket of `burst` requests, filled at
    /// `rate` a second.
    private(set) var fixed = ReceiverLimits()
    private var tokens: Double = 0
    private var filledAt: Date?

    init(key: String, settings: Settings, now: Date, limits: ReceiverLimits = ReceiverLimits()) {
        self.key = key
        limit = Self.startingLimit(settings)
        lastActivity = now
        fix(limits, settings: settings, now: now)
    }

    private static func startingLimit(_ settings: Settings) -> Double {
        Double(max(1, min(settings.maximumConcurrency, settings.initialConcurrency)))
    }

    /// Takes an admin's limits (this worker's share; empty: its own adaptive limit again).
    mutating func fix(_ limits: ReceiverLimits, settings: Settings, now: Date) {
        guard limits != fixed else { return }
        let before = fixed
        fixed = limits
        if let concurrency = limits.concurrency {
            limit = Double(concurrency)
        } else if before.concurrency != nil {
            limit = Self.startingLimit(settings)
        }
        if limits.rate != nil {
            // A new rate starts with its burst; a changed one keeps what was left of the
            // old (no more than its own burst): a share that shrinks grants nothing.
            let left = before.rate == nil ? .infinity : tokensAvailable(now: now)
            tokens = min(left, Double(limits.burst ?? 1))
            filledAt = now
        }
    }

    /// Requests the rate allows at `now` (unbounded without a rate).
    func tokensAvailable(now: Date) -> Double {
        guard let rate = fixed.rate else { return .infinity }
        let elapsed = filledAt.map { max(0, now.timeIntervalSince($0)) } ?? 0
        return min(Double(fixed.burst ?? 1), tokens + elapsed * rate)
    }

    /// Takes one request of the rate, if it allows one at `now`.
    private mutating func takeToken(now: Date) -> Bool {
        guard fixed.rate != nil else { return true }
        tokens = tokensAvailable(now: now)
        filledAt = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }

    /// Whether a request may start now: under its limit, and (with a rate) a request of the
    /// rate left.
    private func hasRoom(now: Date) -> Bool {
        inFlight < Int(limit) && tokensAvailable(now: now) >= 1
    }

    /// The receiver of a URL, or the URL itself when it has none (such a URL is refused
    /// before it gets here).
    static func key(of url: String, components: URLComponents?) -> String {
        components.flatMap(ReceiverKey.normalize) ?? url
    }

    /// Seconds of answers remembered: a receiver given its jobs in bursts (1,000 due at
    /// the top of every second, say) answers them in a fraction of each second, and a second
    /// that happens to fall between two bursts must not make it look slow.
    static let answerMemory = 3

    private mutating func countAnswer(now: Date) {
        answers.add(1, at: now)
        if busySince != nil { answersWhileBusy += 1 }
    }

    /// About how many answers it gives in a second, lately: the most it gave in any second
    /// of the last few (to a tenth), or its rate since it became busy, whichever is larger
    /// (a new receiver given a batch shows its rate within milliseconds). Nothing while its
    /// oldest request has been out for a second or more: it is not answering at that rate now.
    func answeredInASecond(now: Date) -> Int {
        if let oldest = starts.first, now.timeIntervalSince(oldest) >= Self.waitingSeconds { return 0 }
        // The largest sum over ten consecutive tenths (in order, gaps allowed).
        let answerTenths = answers.entries
        let oldest = TenthCounts.tenth(now) - 10 * Self.answerMemory
        let first = answerTenths.firstIndex { $0.tenth > oldest } ?? answerTenths.endIndex
        var remembered = 0
        var sum = 0
        var low = first
        for high in first..<answerTenths.endIndex {
            sum += answerTenths[high].count
            while answerTenths[low].tenth <= answerTenths[high].tenth - 10 {
                sum -= answerTenths[low].count
                low += 1
            }
            remembered = max(remembered, sum)
        }
        guard let busySince, answersWhileBusy > 0 else { return remembered }
        // At least 10 ms of it, so that a first quick answer or two does not promise thousands.
        let busy = max(now.timeIntervalSince(busySince), 0.01)
        let rate = min(Double(answersWhileBusy) / busy, 1_000_000)
        return max(remembered, Int(rate))
    }

    /// Why a new job would be parked now, if it would (without counting it in). A job the
    /// worker `held` until its due time is in its hands already, with a window of its own
    /// (`WORKER_HELD_WINDOW`): parking it would only send it through the broker again, so it
    /// is not parked for capacity unless its receiver is slow.
    func wouldPark(now: Date, held: Bool = false) -> ParkReason? {
        if heldOpen { return .open }
        switch breaker {
        case .open:
            if let nextProbe, now >= nextProbe, inFlight == 0 { return nil }
            return .open
        case .halfOpen:
            return .open
        case .closed:
            if let pausedUntil, now < pausedUntil { return .paused }
            if held && !isSlow(now: now) { return nil }
            return !hasRoom(now: now) && waiting.count >= maximumWaiting(now: now) ? .capacity : nil
        }
    }

    /// Seconds of parks remembered: the longest window asked for (the long park's delay,
    /// in which a parked job comes back).
    static let parkMemory = DeliveryTopology.parkDelays.max().map { $0 / 1000 } ?? 10

    /// Jobs parked in the last `window` seconds (to a tenth of a second, at most `parkMemory`).
    func recentParks(now: Date, window: Double) -> Int {
        parks.count(after: TenthCounts.tenth(now.addingTimeInterval(-min(max(window, 0), Double(Self.parkMemory)))))
    }

    /// The connection is gone: its requests were cancelled and its waiting jobs return to
    /// the queue.
    mutating func dropConnection() {
        waiting.removeAll()
        starts.removeAll()
        if probing {
            probing = false
            breaker = .open
        }
    }

    /// Jobs waiting for this receiver, in the worker and parked in the broker in `window`.
    func waitingCount(now: Date, window: Double) -> Int {
        waiting.count + recentParks(now: now, window: window)
    }

    var isIdle: Bool { inFlight == 0 && waiting.isEmpty && breaker == .closed && !heldOpen && pausedUntil == nil }

    /// Slow: its oldest request has been out for `slowRequest` or longer, and it did not
    /// answer quickly within the last second, nor is it in the first `heldGrace` of a burst
    /// the worker held. A worker busy with a burst it held (50,000 admitted at one instant)
    /// hears late of answers that came at once, and on two busy cores even libcurl's own
    /// answer times grow: by those alone its requests looked slow, and 49,870 of 50,000 held
    /// jobs were parked round the broker (measured, in two runs of four).
    func isSlow(now: Date) -> Bool {
        guard let oldest = starts.first, now.timeIntervalSince(oldest) >= Self.slowRequest else { return false }
        if let heldBurstSince, now.timeIntervalSince(heldBurstSince) < Self.heldGrace { return false }
        let answeringQuickly = (lastAnswer.map { now.timeIntervalSince($0) < 1 } ?? false) && (latency ?? .infinity) < Self.slowRequest
        return !answeringQuickly
    }

    /// Seconds a receiver given a burst the worker held (its first held job found it idle) is
    /// not judged slow: at that instant the worker and the machine are the bottleneck, not
    /// the receiver, and what it measures is their delay. A receiver that is slow is judged
    /// so this long after the burst began (its held jobs parked then as any others).
    static let heldGrace = 2.0

    /// Seconds of work a receiver may keep waiting in the worker.
    static let waitingSeconds = 1.0
    /// A request out this many seconds makes its receiver slow: jobs admitted to wait for it
    /// before may be parked when they no longer fit its waiting room.
    static let slowRequest = 0.25

    /// Jobs kept waiting in the worker for this receiver, at most: what it can answer in
    /// about a second, and never fewer than its limit. "What it can answer" is the larger of
    /// what it did answer in the last second and what its limit of requests would answer at
    /// its answer time so far (or the age of its oldest request, if that is longer; a
    /// receiver not heard from yet is taken for a fast one until its requests age). Beyond
    /// this jobs are parked, so that a slow receiver holds a small share of the prefetch
    /// window and a fast one as much as it can use.
    func maximumWaiting(now: Date) -> Int {
        let oldest = starts.first.map { now.timeIntervalSince($0) } ?? 0
        // Its answer time counts while it is answering; after a quiet spell it may be stale
        // (measured while the worker was busy), and a new burst starts on trust.
        let recent = lastAnswer.map { now.timeIntervalSince($0) < 2 } ?? false
        let answerTime = max(recent ? (latency ?? 0.001) : 0.001, oldest, 0.001)
        let byAnswerTime = Double(max(1, Int(limit))) * Self.waitingSeconds / answerTime
        let answered = Double(answeredInASecond(now: now))
        let room = Int(min(max(byAnswerTime, answered, limit, 1), 100_000))
        // A rate set by hand: about a second of it, and its burst.
        guard let rate = fixed.rate else { return room }
        return max(1, min(room, Int(min(rate * Self.waitingSeconds, 100_000)) + (fixed.burst ?? 1)))
    }

    // MARK: Jobs

    /// Decides about a job that is ready; `.start` and `.wait` count it in. A job `held` until
    /// its due time waits beyond the waiting room while the receiver is not slow (see
    /// `wouldPark`); once it is, `release` parks what does not fit.
    mutating func admit(_ tag: UInt64, settings: Settings, now: Date, held: Bool = false) -> Admission {
        lastActivity = now
        if let pausedUntil, now >= pausedUntil { self.pausedUntil = nil }
        if heldOpen { return parked(.open, now: now) }
        switch breaker {
        case .open:
            guard let nextProbe, now >= nextProbe, inFlight == 0 else { return parked(.open, now: now) }
            breaker = .halfOpen
            probing = true
            starts.append(now)
            return .start(probe: true)
        case .halfOpen:
            return parked(.open, now: now)
        case .closed:
            break
        }
        if pausedUntil != nil { return parked(.paused, now: now) }
        if held && busySince == nil { heldBurstSince = now }
        if inFlight < Int(limit), takeToken(now: now) {
            starts.append(now)
            return .start(probe: false)
        }
        if waiting.count < maximumWaiting(now: now) || (held && !isSlow(now: now)) {
            waiting.append(tag)
            return .wait
        }
        return parked(.capacity, now: now)
    }

    private mutating func parked(_ reason: ParkReason, now: Date) -> Admission {
        noteParked(now: now)
        return .park(reason)
    }

    /// Counts a job parked for this receiver (also one parked before it was read, on what
    /// `wouldPark` said).
    mutating func noteParked(now: Date, count: Int = 1) {
        parks.add(count, at: now)
    }

    /// Takes waiting jobs out (they were handed back or their connection was lost).
    mutating func forget(_ tags: Set<UInt64>) {
        guard !waiting.isEmpty else { return }
        waiting.removeAll { tags.contains($0) }
    }

    /// Records how an attempt ended, and returns the breaker's change, if any.
    mutating func finished(
        _ answer: Answer, seconds: Double, retryAfter: Double?, settings: Settings, now: Date
    ) -> Transition? {
        lastActivity = now
        // The limit held jobs back: all its requests were out, or jobs waited for one.
        let atLimit = starts.count >= Int(limit) || !waiting.isEmpty
        _ = starts.popFirst()
        countAnswer(now: now)
        lastAnswer = now
        let succeeded = answer != .failed(overloaded: false) && answer != .failed(overloaded: true)
        successRate = (successRate ?? (succeeded ? 1 : 0)) * 0.9 + (succeeded ? 0.1 : 0)
        if answer != .failed(overloaded: false) || seconds > 0 {
            latency = latency.map { $0 * 0.8 + seconds * 0.2 } ?? seconds
        }
        // Adaptive concurrency: halve on overload (at most once per answer time), grow by
        // one request per limit's worth of good, quick answers while the limit holds jobs back.
        let climbing = goodAnswers >= 5 && seconds > 2 * (usualAnswer ?? seconds) + 1
        var quick = false
        if answer == .success {
            usualAnswer = usualAnswer.map { $0 * 0.95 + seconds * 0.05 } ?? seconds
            goodAnswers += 1
            let fastest = fastestAnswer.map { min(seconds, $0 + max(0, seconds - $0) / 1000) } ?? seconds
            fastestAnswer = fastest
            quick = seconds <= 2 * fastest + 0.01
        }
        let overloaded = answer == .failed(overloaded: true) || climbing
        if fixed.concurrency != nil {
            // Set by hand: an admin's number, not learnt.
        } else if overloaded {
            let calm = max(1, latency ?? 1)
            if lastDecrease.map({ now.timeIntervalSince($0) >= calm }) ?? true {
                limit = max(1, limit / 2)
                lastDecrease = now
            }
        } else if answer == .success, atLimit, quick, limit < Double(settings.initialConcurrency) || seconds < Self.slowRequest {
            // Beyond its starting limit only for a receiver that answers within
            // `slowRequest`: a slow one would hold more of the worker's window for long.
            limit = min(Double(settings.maximumConcurrency), limit + 1 / max(1, limit))
        }
        if let retryAfter, retryAfter > 0, answer == .failed(overloaded: true) {
            let until = now.addingTimeInterval(min(retryAfter, settings.maximumPause))
            pausedUntil = max(pausedUntil ?? until, until)
        }
        // The circuit breaker.
        if succeeded {
            failures = 0
            failingSince = nil
            if probing || breaker != .closed {
                let from = breaker
                probing = false
                breaker = .closed
                nextProbe = nil
                limit = Double(fixed.concurrency ?? 1)  // an adaptive limit grows back with good answers
                changedAt = now
                return Transition(from: from, to: .closed, reason: "the probe succeeded")
            }
            return nil
        }
        failures += 1
        failingSince = failingSince ?? now
        if probing {
            probing = false
            breaker = .open
            nextProbe = now.addingTimeInterval(settings.probeInterval)
            changedAt = now
            return Transition(from: .halfOpen, to: .open, reason: "the probe failed")
        }
        if breaker == .closed, let failingSince, failures >= settings.minimumFailures,
            now.timeIntervalSince(failingSince) >= settings.openAfter
        {
            breaker = .open
            nextProbe = now.addingTimeInterval(settings.probeInterval)
            changedAt = now
            return Transition(
                from: .closed, to: .open,
                reason: "\(failures) failed attempts in a row over \(Int(now.timeIntervalSince(failingSince))) s")
        }
        return nil
    }

    /// The waiting jobs that may start now (each counted in), and those that must be parked
    /// because the receiver paused or opened meanwhile.
    mutating func release(now: Date) -> (start: [UInt64], park: [(UInt64, ParkReason)]) {
        if let pausedUntil, now >= pausedUntil { self.pausedUntil = nil }
        if heldOpen || breaker != .closed || pausedUntil != nil {
            let reason: ParkReason = (heldOpen || breaker != .closed) ? .open : .paused
            defer { waiting.removeAll() }
            noteParked(now: now, count: waiting.count)
            return ([], waiting.map { ($0, reason) })
        }
        var start: [UInt64] = []
        while inFlight < Int(limit), !waiting.isEmpty, takeToken(now: now), let tag = waiting.popFirst() {
            start.append(tag)
            starts.append(now)
        }
        // Its requests got slow: what no longer fits goes to the broker, newest first. Slow
        // means its oldest request has been out for a while: a receiver given a batch all at
        // once by a worker that is busy with that batch measures its first answers slow, and
        // would send away jobs it is about to answer.
        var park: [(UInt64, ParkReason)] = []
        let room = isSlow(now: now) ? maximumWaiting(now: now) : .max
        while waiting.count > room, let tag = waiting.popLast() {
            park.append((tag, .capacity))
        }
        noteParked(now: now, count: park.count)
        return (start, park.reversed())
    }

    // MARK: By hand

    enum Command: String, Sendable, Equatable, CaseIterable {
        /// Open and hold open (no probes) until closed by hand.
        case open
        /// Close now; the breaker may open again by itself.
        case close
        /// Close and forget everything learnt: limit, failures, pause, statistics.
        case reset
    }

    mutating func apply(_ command: Command, settings: Settings, now: Date) -> Transition? {
        let from = breaker
        switch command {
        case .open:
            heldOpen = true
            breaker = .open
            probing = false
            nextProbe = nil
        case .close:
            heldOpen = false
            breaker = .closed
            probing = false
            nextProbe = nil
            failures = 0
            failingSince = nil
        case .reset:
            // Limits set by hand are kept: they are the admin's, not learnt.
            let (starts, waiting) = (self.starts, self.waiting)
            self = Receiver(key: key, settings: settings, now: now, limits: fixed)
            // Requests in flight still end, and waiting jobs still wait.
            self.starts = starts
            self.waiting = waiting
        }
        guard from != breaker else { return nil }
        changedAt = now
        return Transition(from: from, to: breaker, reason: "\(command.rawValue) by an operator")
    }
}

/// Events counted by tenth of a second (of the clock), oldest first, for the last `seconds`:
/// a count per tenth however many happen in it.
struct TenthCounts {
    let seconds: Int
    private(set) var entries: [(tenth: Int, count: Int)] = []

    init(seconds: Int) {
        self.seconds = seconds
    }

    /// The tenth of a second a date falls in (0 for a date no clock shows).
    static func tenth(_ date: Date) -> Int {
        let tenths = (date.timeIntervalSince1970 * 10).rounded(.down)
        return tenths.isFinite && abs(tenths) < 1e15 ? Int(tenths) : 0
    }

    mutating func add(_ count: Int, at date: Date) {
        guard count > 0 else { return }
        let tenth = Self.tenth(date)
        if let last = entries.last, last.tenth == tenth {
            entries[entries.count - 1].count += count
        } else {
            entries.append((tenth, count))
            entries.removeAll { $0.tenth <= tenth - 10 * seconds }
        }
    }

    /// Events in the tenths after `oldest`, counted from the newest back.
    func count(after oldest: Int) -> Int {
        var sum = 0
        for entry in entries.reversed() {
            guard entry.tenth > oldest else { break }
            sum += entry.count
        }
        return sum
    }
}
