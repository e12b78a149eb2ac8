import Foundation
import SchedulerCore
import Testing

@testable import Worker

/// A receiver's limits, pause and circuit breaker, without servers.
@Suite struct ReceiverTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)
    let settings = Receiver.Settings(maximumConcurrency: 4, openAfter: 60, minimumFailures: 5, probeInterval: 30)
    var receiver: Receiver
    var now = start

    init() {
        receiver = Receiver(key: "http://r.example:80", settings: settings, now: Self.start)
    }

    mutating func admit(_ tag: UInt64, after seconds: Double = 0) -> Receiver.Admission {
        now = now.addingTimeInterval(seconds)
        return receiver.admit(tag, settings: settings, now: now)
    }

    @discardableResult
    mutating func answer(
        _ status: Int?, seconds: Double = 0.1, retryAfter: Double? = nil, timedOut: Bool = false, after: Double = 0
    ) -> Receiver.Transition? {
        now = now.addingTimeInterval(after)
        return receiver.finished(
            Receiver.Answer(status: status, timedOut: timedOut), seconds: seconds, retryAfter: retryAfter, settings: settings, now: now)
    }

    @Test(arguments: [
        ("HTTP://Example.COM/hook?x=1", "http://example.com:80"),
        ("https://example.com/hook", "https://example.com:443"),
        ("http://example.com:8080/a", "http://example.com:8080"),
        ("http://[::1]:9000/", "http://[::1]:9000"),
        ("http://127.0.0.1/", "http://127.0.0.1:80"),
    ])
    func aReceiverIsItsSchemeHostAndPort(_ url: String, _ key: String) {
        #expect(ReceiverKey.normalize(url) == key)
    }

    @Test(arguments: ["ftp://example.com/", "not a url", "http:///nohost", ""])
    func somethingElseHasNoReceiver(_ url: String) {
        #expect(ReceiverKey.normalize(url) == nil)
    }

    @Test mutating func jobsHeldUntilTheirDueTimeWaitBeyondTheRoomUntilTheReceiverIsSlow() {
        for tag in 1...4 { #expect(admit(UInt64(tag)) == .start(probe: false)) }
        let room = receiver.maximumWaiting(now: now)
        // A burst the worker held: all of it waits in the worker, none goes back to the broker.
        for tag in 5..<(5 + UInt64(room) + 1_000) {
            #expect(receiver.admit(tag, settings: settings, now: now, held: true) == .wait)
        }
        #expect(receiver.wouldPark(now: now, held: true) == nil)
        #expect(receiver.wouldPark(now: now) == .capacity, "a job not held is parked past the room, as before")
        #expect(receiver.admit(1_000_000, settings: settings, now: now) == .park(.capacity))
        // Its requests have been out for 2 s: it is slow; what does not fit its room is parked.
        now = now.addingTimeInterval(2)
        #expect(receiver.admit(1_000_001, settings: settings, now: now, held: true) == .park(.capacity))
        let parked = receiver.release(now: now).park
        #expect(receiver.waiting.count == receiver.maximumWaiting(now: now))
        #expect(parked.count == room + 1_000 - receiver.waiting.count && parked.allSatisfy { $0.1 == .capacity })
    }

    @Test mutating func requestsThatLookOldWhileAnswersComeQuicklyAreNotSlow() {
        // A worker busy with a burst hears late of quick answers: its oldest request looks old.
        for tag in 1...4 { #expect(admit(UInt64(tag)) == .start(probe: false)) }
        answer(200, seconds: 0.002, after: 0.01)
        #expect(receiver.release(now: now).start == [])
        let room = receiver.maximumWaiting(now: now)
        for tag in 5..<(5 + UInt64(room) + 100) { _ = receiver.admit(tag, settings: settings, now: now, held: true) }
        now = now.addingTimeInterval(0.5)
        #expect(!receiver.isSlow(now: now), "answered within the last second, quickly")
        #expect(receiver.release(now: now).park.isEmpty)
        // No answer for more than a second: slow, and what does not fit is parked.
        now = now.addingTimeInterval(0.6)
        #expect(receiver.isSlow(now: now))
        #expect(!receiver.release(now: now).park.isEmpty)
    }

    @Test mutating func aBurstTheWorkerHeldIsNotJudgedSlowInItsFirstSeconds() {
        // 50,000 held jobs fall due at once on an idle receiver: the worker, busy admitting
        // them, hears of the first answers 0.4 s late, and libcurl measured them at 0.3 s.
        for tag in UInt64(1)...50_000 { _ = receiver.admit(tag, settings: settings, now: now, held: true) }
        #expect(receiver.inFlight == 4 && receiver.waiting.count == 49_996)
        now = now.addingTimeInterval(0.4)
        for _ in 1...4 {
            answer(200, seconds: 0.3)
            let (started, parked) = receiver.release(now: now)
            #expect(started.count == 1 && parked.isEmpty, "none of the burst is parked")
        }
        now = now.addingTimeInterval(0.4)
        #expect(!receiver.isSlow(now: now), "within the burst's first \(Receiver.heldGrace) s")
        // A receiver that is slow is judged so once the grace is over: what does not fit is parked.
        now = now.addingTimeInterval(Receiver.heldGrace)
        #expect(receiver.isSlow(now: now))
        let parked = receiver.release(now: now).park
        #expect(!parked.isEmpty && receiver.waiting.count == receiver.maximumWaiting(now: now))
    }

    @Test mutating func aReceiverBusyBeforeAHeldBurstHasNoGrace() {
        // Its requests were out for a second already (jobs not held): a held job now finds it
        // busy and slow, and is parked beyond the room as before.
        for tag in 1...4 { #expect(admit(UInt64(tag)) == .start(probe: false)) }
        now = now.addingTimeInterval(1)
        for tag in UInt64(5)...2_000 { _ = receiver.admit(tag, settings: settings, now: now, held: true) }
        #expect(receiver.isSlow(now: now))
        #expect(receiver.wouldPark(now: now, held: true) == .capacity)
    }

    @Test mutating func fiftyThousandWaitingJobsStartInLinearTime() {
        // Taken one by one with an array's removeFirst, 50,000 waiting jobs took seconds.
        for tag in 1...4 { #expect(admit(UInt64(tag)) == .start(probe: false)) }
        for tag in 5...50_004 { _ = receiver.admit(UInt64(tag), settings: settings, now: now, held: true) }
        #expect(receiver.waiting.count == 50_000)
        var started: [UInt64] = []
        let clock = ContinuousClock()
        let took = clock.measure {
            while !receiver.waiting.isEmpty {
                answer(200, seconds: 0.001)
                started += receiver.release(now: now).start
            }
        }
        #expect(started == Array(5...50_004), "oldest first, each once")
        #expect(took < .seconds(5), "took \(took)")
    }

    @Test func aFIFOTakesItsFirstInOrderAndKeepsTheRestAcrossCompactions() {
        var queue: FIFO<Int> = []
        for n in 0..<5_000 { queue.append(n) }
        for n in 0..<3_000 { #expect(queue.popFirst() == n) }
        #expect(queue.count == 2_000 && queue.first == 3_000)
        queue.append(5_000)
        #expect(queue.popLast() == 5_000 && queue.popLast() == 4_999)
        queue.removeAll { $0 % 2 == 1 }
        #expect(Array(queue) == Array(stride(from: 3_000, to: 4_999, by: 2)))
        #expect(queue == FIFO(Array(stride(from: 3_000, to: 4_999, by: 2))))
        while queue.popFirst() != nil {}
        #expect(queue.isEmpty && queue.first == nil && queue.popLast() == nil)
        queue.append(7)
        #expect(queue == [7])
    }

    @Test mutating func jobsStartUpToTheLimitThenWaitThenPark() {
        for tag in 1...4 { #expect(admit(UInt64(tag)) == .start(probe: false)) }
        // Its requests have been out for 2 s: it keeps its limit's worth waiting, no more.
        for tag in 5...8 { #expect(admit(UInt64(tag), after: tag == 5 ? 2 : 0) == .wait) }
        #expect(receiver.maximumWaiting(now: now) == 4)
        #expect(admit(9) == .park(.capacity))
        #expect(receiver.inFlight == 4 && receiver.waiting == [5, 6, 7, 8])
        #expect(receiver.wouldPark(now: now) == .capacity)
        // An answer frees a slot for the oldest waiting job.
        answer(200)
        #expect(receiver.release(now: now).start == [5])
        #expect(receiver.inFlight == 4 && receiver.waiting == [6, 7, 8])
    }

    @Test mutating func aFastReceiverKeepsASecondsWorthWaitingAndASlowOneParksTheRest() {
        for _ in 0..<10 { answer(200, seconds: 0.01) }
        for tag in 1...4 { _ = admit(UInt64(tag)) }
        #expect(receiver.maximumWaiting(now: now) > 300, "four requests at about 10 ms: hundreds a second")
        for tag in 5...200 { #expect(admit(UInt64(tag)) == .wait) }
        // Then its requests hang: at the next look, what no longer fits is parked.
        now = now.addingTimeInterval(2)
        let released = receiver.release(now: now)
        #expect(released.start.isEmpty)
        #expect(receiver.waiting == [5, 6, 7, 8])
        #expect(released.park.map(\.0) == Array(9...200))
        #expect(released.park.allSatisfy { $0.1 == .capacity })
    }

    @Test mutating func aReceiverThatAnswersManyASecondKeepsThemWaitingWhateverItsAnswerTimeLooksLike() {
        // 3,000 answers in the last second, each measured at 200 ms (a busy worker's clock).
        for index in 0..<3000 { answer(200, seconds: 0.2, after: index == 0 ? 0 : 0.0003) }
        #expect(receiver.maximumWaiting(now: now) >= 3000)
        // Two quiet seconds later a new burst starts on trust (the 200 ms may be stale)...
        now = now.addingTimeInterval(2)
        #expect(receiver.maximumWaiting(now: now) >= 1000)
        // ...until its requests are out for a second without an answer.
        for tag in 1...4 { _ = admit(UInt64(tag)) }
        now = now.addingTimeInterval(1)
        #expect(receiver.maximumWaiting(now: now) == 4)
    }

    @Test mutating func aNewReceiverGivenABatchAtOnceShowsItsRateWithinMilliseconds() {
        // 1,000 jobs due at the same instant, for a receiver the worker has not seen yet.
        for tag in 1...4 { #expect(admit(UInt64(tag)) == .start(probe: false)) }
        for tag in 5...1000 { #expect(admit(UInt64(tag)) == .wait) }
        // The worker, busy with the batch, measures each answer at 30-40 ms, and the first
        // ten come back slowly; then they come back fast.
        var started: [UInt64] = []
        for index in 0..<60 {
            answer(200, seconds: index < 10 ? 0.04 : 0.03, after: index < 10 ? 0.004 : 0.0002)
            started += receiver.release(now: now).start
            #expect(receiver.release(now: now).park.isEmpty)
        }
        #expect(started.count == 60)
        #expect(receiver.maximumWaiting(now: now) >= 1000, "60 answers in 50 ms: a thousand a second or more")
    }

    @Test mutating func aReceiverGivenABurstEverySecondKeepsItsRoomWhereverTheBurstsFall() {
        // 1,000 due at the top of every second, answered in 200 ms; a busy worker starts
        // each burst a little early or late.
        for (index, start) in [0, 0.99, 2.02, 3.0, 3.99, 5.02, 5.9, 7.1].enumerated() {
            now = Self.start.addingTimeInterval(start)
            for answers in 0..<1000 {
                answer(200, seconds: 0.03, after: answers == 0 ? 0 : 0.0002)
                if index > 0 && answers == 0 {
                    #expect(receiver.maximumWaiting(now: now) >= 1000, "burst at \(start) s")
                }
            }
        }
    }

    @Test mutating func overloadHalvesTheLimitOncePerAnswerTimeAndGoodAnswersGrowItBack() {
        for tag in 1...4 { _ = admit(UInt64(tag)) }
        answer(503, seconds: 0.5)
        #expect(receiver.limit == 2)
        answer(429, seconds: 0.5)  // the same burst of bad news: no second halving at once
        #expect(receiver.limit == 2)
        answer(503, seconds: 0.5, after: 2)
        #expect(receiver.limit == 1)
        answer(503, seconds: 0.5, after: 2)
        #expect(receiver.limit == 1, "never below one")
        // Jobs wait for it: the limit is what holds them back.
        for tag in 10...20 { _ = admit(UInt64(tag)) }
        #expect(!receiver.waiting.isEmpty)
        for _ in 0..<3 { answer(200) }
        #expect(receiver.limit > 2 && receiver.limit < 3)
        for _ in 0..<50 { answer(200) }
        #expect(receiver.limit == 4, "never above RECEIVER_CONCURRENCY")
    }

    @Test func aNewReceiverStartsAtEightAndEarnsMoreOnlyWhileItsLimitHoldsJobsBack() {
        let settings = Receiver.Settings()
        #expect(settings.maximumConcurrency == 64)
        var now = Self.start
        var receiver = Receiver(key: "http://r.example:80", settings: settings, now: now)
        #expect(receiver.limit == 8)
        // One request at a time, answered quickly, all day: no sign it could take more at once.
        for tag in 1...500 {
            now = now.addingTimeInterval(1)
            #expect(receiver.admit(UInt64(tag), settings: settings, now: now) == .start(probe: false))
            _ = receiver.finished(.success, seconds: 0.002, retryAfter: nil, settings: settings, now: now)
        }
        #expect(receiver.limit == 8)
        // A batch of 5,000 at once, answered quickly: each limit's worth of answers adds one.
        var tag: UInt64 = 1000
        var admitted: [UInt64] = []
        for _ in 0..<5000 {
            tag += 1
            if receiver.admit(tag, settings: settings, now: now) != .park(.capacity) { admitted.append(tag) }
        }
        var limits: [Int] = []
        while receiver.inFlight > 0 {
            now = now.addingTimeInterval(0.0001)
            _ = receiver.finished(.success, seconds: 0.002, retryAfter: nil, settings: settings, now: now)
            _ = receiver.release(now: now)
            limits.append(Int(receiver.limit))
        }
        #expect(admitted.count > 1000)
        #expect(limits.first == 8 && limits.last == 64, "from \(limits.first ?? 0) to \(limits.last ?? 0)")
        #expect(limits.firstIndex(of: 16).map { $0 > 50 } == true, "one more per limit's worth of answers, not one per answer")
        #expect(receiver.inFlight == 0 && receiver.waiting.isEmpty)
        // RECEIVER_CONCURRENCY below eight: it starts there.
        let low = Receiver.Settings(maximumConcurrency: 3)
        #expect(Receiver(key: "http://r.example:80", settings: low, now: now).limit == 3)
    }

    @Test mutating func aReceiverThatQueuesRequestsInsideItEarnsNoMore() {
        let settings = Receiver.Settings()
        receiver = Receiver(key: "http://r.example:80", settings: settings, now: now)
        for tag in 1...200 { _ = receiver.admit(UInt64(tag), settings: settings, now: now) }
        #expect(receiver.inFlight == 8 && !receiver.waiting.isEmpty)
        // It answers in 50 ms at first; then, with more requests out, in 200 ms: they wait
        // inside it. Not slow enough to halve the limit, and no reason to raise it either.
        for index in 0..<100 {
            now = now.addingTimeInterval(0.01)
            _ = receiver.finished(.success, seconds: index < 8 ? 0.05 : 0.2, retryAfter: nil, settings: settings, now: now)
            _ = receiver.release(now: now)
        }
        #expect(receiver.limit > 8 && receiver.limit < 9, "only the quick answers added: \(receiver.limit)")
    }

    @Test mutating func aSlowReceiverWithJobsWaitingStaysAtEight() {
        // It answers every request in a second, steadily, with hundreds waiting: more at once
        // would hold more of the worker's window for long, whatever it could take.
        let settings = Receiver.Settings()
        receiver = Receiver(key: "http://r.example:80", settings: settings, now: now)
        for tag in 1...100 { _ = receiver.admit(UInt64(tag), settings: settings, now: now) }
        for index in 0..<400 {
            now = now.addingTimeInterval(0.125)
            _ = receiver.finished(.success, seconds: 1, retryAfter: nil, settings: settings, now: now)
            _ = receiver.release(now: now)
            _ = receiver.admit(UInt64(1000 + index), settings: settings, now: now)
        }
        #expect(receiver.limit == 8)
        #expect(receiver.inFlight == 8 && !receiver.waiting.isEmpty)
    }

    @Test mutating func anAnswerMuchSlowerThanUsualCountsAsOverload() {
        for _ in 0..<10 { answer(200, seconds: 0.1) }
        #expect(receiver.limit == 4)
        answer(200, seconds: 0.5)
        #expect(receiver.limit == 4, "within twice the usual time plus a second")
        answer(200, seconds: 5)
        #expect(receiver.limit == 2)
    }

    @Test mutating func aSlowReceiverThatIsAlwaysSlowKeepsItsLimit() {
        for _ in 0..<20 { answer(200, seconds: 10) }
        #expect(receiver.limit == 4)
    }

    @Test mutating func retryAfterPausesTheReceiverNotOnlyTheJob() {
        for tag in 1...6 { _ = admit(UInt64(tag)) }
        answer(429, retryAfter: 20)
        #expect(receiver.pausedUntil == now.addingTimeInterval(20))
        let released = receiver.release(now: now)
        #expect(released.start.isEmpty)
        #expect(released.park.map(\.0) == [5, 6] && released.park.allSatisfy { $0.1 == .paused })
        #expect(admit(7, after: 10) == .park(.paused))
        // The pause is over; three requests are still out and the limit was halved to two.
        #expect(admit(8, after: 11) == .wait)
        answer(200)
        answer(200)
        #expect(receiver.release(now: now).start == [8])
    }

    @Test mutating func aHugeRetryAfterPausesForTheLongestPauseOnly() {
        _ = admit(1)
        answer(503, retryAfter: 1e12)
        #expect(receiver.pausedUntil == now.addingTimeInterval(settings.maximumPause))
    }

    @Test mutating func failingForTheSetTimeOpensTheCircuitAndAProbeClosesIt() {
        // Failures for less than BREAKER_OPEN_AFTER, however many, leave it closed.
        for _ in 0..<20 { #expect(answer(nil, after: 1) == nil) }
        #expect(receiver.breaker == .closed)
        let opened = answer(nil, after: 41)
        #expect(opened?.from == .closed && opened?.to == .open)
        #expect(receiver.breaker == .open)
        #expect(admit(1) == .park(.open))
        #expect(receiver.wouldPark(now: now) == .open)
        // After the probe interval one job goes through as a probe; the rest still wait.
        #expect(admit(2, after: 30) == .start(probe: true))
        #expect(receiver.breaker == .halfOpen)
        #expect(admit(3) == .park(.open))
        let closed = answer(200)
        #expect(closed == Receiver.Transition(from: .halfOpen, to: .closed, reason: "the probe succeeded"))
        #expect(receiver.limit == 1, "a receiver back from failing starts gently")
        #expect(admit(4) == .start(probe: false))
    }

    @Test mutating func aFailedProbeOpensTheCircuitAgainUntilTheNextProbe() {
        for _ in 0..<5 { answer(nil, after: 15) }
        #expect(receiver.breaker == .open)
        #expect(admit(1, after: 30) == .start(probe: true))
        #expect(answer(500)?.to == .open)
        #expect(admit(2, after: 29) == .park(.open))
        #expect(admit(3, after: 1) == .start(probe: true))
    }

    @Test mutating func refusalsAreAnswersAndNeverOpenTheCircuit() {
        for _ in 0..<20 { #expect(answer(404, after: 10) == nil) }
        #expect(receiver.breaker == .closed)
        #expect(receiver.limit == 4)
    }

    @Test mutating func oneSuccessStartsTheFailingTimeAgain() {
        for _ in 0..<5 { answer(nil, after: 10) }
        answer(200, after: 1)
        for _ in 0..<5 { answer(nil, after: 10) }
        #expect(receiver.breaker == .closed, "40 s of failures since the last success")
    }

    @Test mutating func anOperatorCanHoldItOpenCloseItAndResetIt() {
        for tag in 1...6 { _ = admit(UInt64(tag)) }
        #expect(receiver.apply(.open, settings: settings, now: now)?.to == .open)
        #expect(receiver.release(now: now).park.map(\.1) == [.open, .open])
        #expect(admit(7, after: 3600) == .park(.open), "held open: no probes")
        #expect(receiver.apply(.close, settings: settings, now: now)?.to == .closed)
        answer(503, seconds: 0.2)
        #expect(receiver.limit == 2)
        _ = receiver.apply(.reset, settings: settings, now: now)
        #expect(receiver.limit == 4)
        #expect(receiver.inFlight == 3, "requests in flight still end")
    }

    @Test mutating func aLostConnectionEmptiesTheReceiverAndEndsAProbe() {
        for _ in 0..<5 { answer(nil, after: 15) }
        #expect(admit(1, after: 30) == .start(probe: true))
        receiver.dropConnection()
        #expect(receiver.inFlight == 0 && receiver.breaker == .open)
        #expect(admit(2) == .start(probe: true), "the probe interval already passed")
    }

    @Test("parks are counted in their window: the last second's, the last ten seconds', none older")
    mutating func parksInTheirWindow() {
        receiver.noteParked(now: now)
        receiver.noteParked(now: now.addingTimeInterval(4), count: 3)
        now = now.addingTimeInterval(5.5)
        receiver.noteParked(now: now, count: 2)
        #expect(receiver.recentParks(now: now, window: 1) == 2)
        #expect(receiver.recentParks(now: now, window: 2) == 5, "and the three 1.5 s ago")
        #expect(receiver.recentParks(now: now, window: 10) == 6)
        #expect(receiver.waitingCount(now: now, window: 10) == 6)
        now = now.addingTimeInterval(11)
        #expect(receiver.recentParks(now: now, window: 10) == 0, "older than ten seconds")
        // The waiting jobs it sends away count too.
        let held = Receiver.Settings(maximumConcurrency: 1, openAfter: 60, minimumFailures: 5, probeInterval: 30)
        var one = Receiver(key: "http://r.example:80", settings: held, now: now, limits: ReceiverLimits(concurrency: 1))
        _ = one.admit(1, settings: held, now: now)
        for tag in UInt64(2)...5 { #expect(one.admit(tag, settings: held, now: now) == .wait) }
        _ = one.apply(.open, settings: held, now: now)
        #expect(one.release(now: now).park.count == 4)
        #expect(one.recentParks(now: now, window: 1) == 4)
    }

    @Test("jobs parked at one instant cost the same each however many: 10,000 take about four times 2,500's time")
    func parkingIsLinear() {
        // As the machine does: each park counted, and the last second's parks counted for its delay.
        func fastest(_ count: Int) -> Double {
            var best = Double.infinity
            for _ in 0..<3 {
                var receiver = Receiver(key: "http://r.example:80", settings: settings, now: Self.start)
                let clock = ContinuousClock.now
                for _ in 0..<count {
                    receiver.noteParked(now: Self.start)
                    _ = receiver.recentParks(now: Self.start, window: 1)
                }
                let elapsed = ContinuousClock.now - clock
                best = min(best, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            }
            return best
        }
        // Linear: about 4; a list of each park's time counted through for each: about 16.
        let (small, large) = (fastest(2_500), fastest(10_000))
        #expect(large / max(small, 1e-6) < 8, "2,500 took \(small) s, 10,000 took \(large) s")
    }
}

/// Limits an admin set by hand (`scheduler-ctl receivers set`): this worker's share of them.
@Suite struct ReceiverLimitsSetByHandTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)
    let settings = Receiver.Settings(maximumConcurrency: 64, initialConcurrency: 8)

    @Test func aConcurrencySetByHandReplacesTheAdaptiveLimitAndStaysThroughSlowAnswersAndOverload() {
        var receiver = Receiver(key: "http://slow.example:80", settings: settings, now: Self.start, limits: .init(concurrency: 400))
        var now = Self.start
        // Slow (8 s an answer): the adaptive limit would hold it at 8; set by hand, 400 start at once.
        for tag in 1...400 { #expect(receiver.admit(UInt64(tag), settings: settings, now: now) == .start(probe: false)) }
        #expect(receiver.admit(401, settings: settings, now: now) == .wait)
        now = now.addingTimeInterval(8)
        _ = receiver.finished(.success, seconds: 8, retryAfter: nil, settings: settings, now: now)
        _ = receiver.finished(.failed(overloaded: true), seconds: 8, retryAfter: nil, settings: settings, now: now)
        #expect(receiver.limit == 400, "an admin's number is not learnt away")
        // Back to the adaptive limit, where it starts, once the limits are removed.
        receiver.fix(ReceiverLimits(), settings: settings, now: now)
        #expect(receiver.limit == 8)
        // A reset forgets what was learnt, not what was set.
        receiver.fix(.init(concurrency: 20), settings: settings, now: now)
        _ = receiver.apply(.reset, settings: settings, now: now)
        #expect(receiver.limit == 20 && receiver.fixed.concurrency == 20)
    }

    @Test func aRateLetsItsBurstThroughThenOneRequestPerTickOfTheRate() {
        var receiver = Receiver(
            key: "http://rated.example:80", settings: settings, now: Self.start, limits: .init(rate: 2, burst: 3))
        var now = Self.start
        var started: [UInt64] = []
        var waiting: [UInt64] = []
        for tag in UInt64(1)...10 {
            switch receiver.admit(tag, settings: settings, now: now) {
            case .start: started.append(tag)
            case .wait: waiting.append(tag)
            case .park: break
            }
        }
        #expect(started == [1, 2, 3], "the burst")
        // About a second of the rate and its burst wait in the worker; the rest is parked.
        #expect(waiting == [4, 5, 6, 7, 8])
        #expect(receiver.wouldPark(now: now) == .capacity)
        // Answers free request slots, not the rate: nothing starts before the bucket refills.
        for _ in 1...3 { _ = receiver.finished(.success, seconds: 0.01, retryAfter: nil, settings: settings, now: now) }
        #expect(receiver.release(now: now).start.isEmpty)
        now = now.addingTimeInterval(0.5)
        #expect(receiver.release(now: now).start == [4])
        now = now.addingTimeInterval(0.25)
        #expect(receiver.release(now: now).start.isEmpty)
        now = now.addingTimeInterval(0.25)
        #expect(receiver.release(now: now).start == [5])
        // Idle for long: the bucket holds its burst, no more.
        now = now.addingTimeInterval(60)
        #expect(receiver.release(now: now).start == [6, 7, 8])
        #expect(receiver.tokensAvailable(now: now) == 0)
        // Its share shrinks (another worker came): no fresh burst comes with the change.
        receiver.fix(ReceiverLimits(rate: 1, burst: 2), settings: settings, now: now)
        #expect(receiver.tokensAvailable(now: now) == 0)
        now = now.addingTimeInterval(10)
        #expect(receiver.tokensAvailable(now: now) == 2, "the new burst, refilled at the new rate")
    }

    @Test func limitsAreCheckedAndSharedAmongTheWorkersAlive() throws {
        #expect(throws: FieldErrorMessage.self) { try ReceiverLimits.validated(concurrency: 0, rate: nil, burst: nil) }
        #expect(throws: FieldErrorMessage.self) { try ReceiverLimits.validated(concurrency: 10_001, rate: nil, burst: nil) }
        for rate in [0, -1, .nan, .infinity, 100_001] {
            #expect(throws: FieldErrorMessage.self) { try ReceiverLimits.validated(concurrency: nil, rate: rate, burst: nil) }
        }
        #expect(throws: FieldErrorMessage.self) { try ReceiverLimits.validated(concurrency: 5, rate: nil, burst: 3) }
        #expect(throws: FieldErrorMessage.self) { try ReceiverLimits.validated(concurrency: nil, rate: 5, burst: 0) }
        #expect(try ReceiverLimits.validated(concurrency: nil, rate: 2.5, burst: nil).burst == 3, "a second of the rate")

        let limits = ReceiverLimits(concurrency: 10, rate: 9, burst: 4)
        let shares = (0..<3).map { limits.share(workers: 3, rank: $0) }
        #expect(shares.map(\.concurrency) == [4, 3, 3], "10 in flight among three workers")
        #expect(shares.map(\.rate) == [3, 3, 3] && shares.map(\.burst) == [2, 2, 2])
        #expect(ReceiverLimits(concurrency: 2).share(workers: 5, rank: 4).concurrency == 1, "at least one each")
        #expect(limits.share(workers: 0, rank: -7) == limits, "no worker seen yet: this one is all")
        #expect(limits.share(workers: 2, rank: 9).concurrency == 5)
    }
}
