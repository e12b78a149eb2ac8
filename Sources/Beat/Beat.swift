import AMQP
import DeliveryQueues
import Foundation
import Logging
import Metrics
import Postgres
import SchedulerCore
import SchedulerStore
import ServiceLifecycle
import Synchronization
import Telemetry

/// scheduler-beat: publishes one job per due occurrence, then sleeps until the next due
/// time or until PostgreSQL says a schedule changed. With `BEAT_LOOKAHEAD` (default 1.5 s)
/// it does so that much ahead of the due time, and the worker holds each job until its
/// time: what stands between the due instant and the POST is the worker's read of the
/// target, not beat's wake-up, claim, publish and the broker's hand-over. Jobs published
/// ahead go to the held queue (`HeldRouting`), so they never stand in front of jobs due now;
/// for many due at one instant, beat's part of the work is done before it: a burst that
/// would take beat longer than the lookahead to publish (`BEAT_PACE`) is started that much
/// earlier, at most 10 s ahead (`BurstLead`).
///
/// Each round claims due schedules with `FOR UPDATE SKIP LOCKED` (so several beats never
/// claim the same occurrence), records their deliveries and advances them in one
/// transaction, then publishes with confirms, and marks them published `markDelay` seconds
/// later (a few seconds, well inside the lease): the worker's record of an outcome marks it
/// too, so a job delivered by then is written once less (a fifth fewer rows written per
/// delivery in a burst, and PostgreSQL's CPU per delivery about halved). Work per round
/// grows with the number of due schedules: the claim and the wake-up query use the partial
/// index on `next_send_at`. A crash between commit and publish leaves the deliveries
/// unpublished; their lease runs out and a beat publishes them (same delivery ids).
///
/// A beat that loses PostgreSQL (a restart, a failover) keeps in memory what it claimed and
/// has not yet had confirmed by the broker, and what the broker confirmed that it has not
/// yet marked published: when the database is back, it publishes the first and marks the
/// second before anything else, instead of waiting for their lease (`BEAT_PUBLISH_LEASE`)
/// to run out, and without publishing again what was published.
public final class Beat: Service, Sendable {
    /// Claimed, recorded and owed to the broker; or published and owed a mark.
    struct Owed {
        /// With when they were leased: after `lease` seconds they are any beat's again.
        var unpublished: [UUID: (job: DeliveryJob, leasedAt: Date)] = [:]
        /// With when `markDelay` counts from: the broker's confirm or, for a job published
        /// further ahead than the lookahead (a burst started early), later (see `markFrom`).
        var unmarked: [UUID: Date] = [:]
    }

    let owed = Mutex(Owed())
    /// Whether occurrences may be waiting behind their schedule's previous one (`buffer_one`):
    /// set when this beat buffered one, cleared when none is left. Rounds look for them only
    /// then, and every `bufferedLookEvery` seconds (another beat may have buffered one, and
    /// stopped): the schedules that do not ask for it pay nothing for it.
    let buffered = Mutex((maybe: true, lookedAt: Date.distantPast))
    static let bufferedLookEvery = 30.0
    /// Whether a job goes to the held queue (published ahead of its time) or the main one.
    let routing = Mutex(HeldRouting())
    let store: DeliveryStore
    let console: ConsoleStore
    /// When the console was last told about a round, and whether telling it is failing.
    let status = Mutex((reportedAt: Date.distantPast, failing: false))
    let publishLease: Double
    let publisher: AMQPPublisher
    let databaseURL: String
    let batchSize: Int
    let logger: Logger
    /// The longest sleep without a notification, in seconds.
    let idleWake: Double
    /// Seconds ahead of their due time occurrences are claimed and published
    /// (`BEAT_LOOKAHEAD`): the worker holds each job until its time.
    let lookahead: Double
    /// How far ahead a burst (many due within a second) is started (`BEAT_PACE`).
    let lead: BurstLead
    /// The next due time beat counted what is due at (and when), and the burst that made, if
    /// any: from when this beat claims it, and up to which due time.
    let ahead = Mutex<(next: Date, countedAt: Date, start: BurstLead.Start?)?>(nil)
    /// Seconds after its confirm that a job is marked published if no worker has recorded
    /// it yet: a quarter of the lease, at most 5 s, so the mark always comes long before
    /// another beat could take the job as unpublished (a burst's jobs: see `markFrom`).
    var markDelay: Double { min(5, publishLease / 4) }

    public init(configuration: Configuration, pool: PostgresPool, logger: Logger, idleWake: Double = 30) {
        store = DeliveryStore(
            pool: pool, publishLease: configuration.beatPublishLease, limits: configuration.scheduleLimits,
            hookAuthToken: configuration.hookAuthToken)
        console = ConsoleStore(pool: pool)
        publishLease = Double(configuration.beatPublishLease)
        publisher = AMQPPublisher(
            url: configuration.brokerURL, topology: DeliveryTopology.make(configuration.retryPolicy), logger: logger,
            heartbeat: configuration.brokerHeartbeat)
        databaseURL = configuration.databaseURL
        batchSize = configuration.beatBatchSize
        self.logger = logger
        self.idleWake = idleWake
        lookahead = configuration.beatLookahead
        lead = BurstLead(lookahead: configuration.beatLookahead, pace: configuration.beatPace)
    }

    public func run() async throws {
        let listener = Mutex<PostgresListener?>(nil)
        let stopping = Mutex(false)
        defer {
            listener.withLock { $0?.stop() }
            publisher.close()
        }
        Readiness.shared.expect(["database", "broker"])
        await withGracefulShutdownHandler {
            var failures = 0
            while !stopping.withLock({ $0 }) {
                do {
                    // `/readyz`: an idle beat learns of the broker here. The round goes on
                    // without it: occurrences falling due during a broker outage are claimed
                    // and recorded, and published once it is back.
                    do {
                        try await publisher.connect()
                        Readiness.shared.ready("broker")
                    } catch {
                        Readiness.shared.failing("broker", "unreachable")
                    }
                    var current = listener.withLock { $0 }
                    if current == nil {
                        let opened = try await PostgresListener(url: databaseURL, channel: "scheduler_schedules", logger: logger)
                        listener.withLock { $0 = opened }
                        current = opened
                    }
                    try await runRound()
                    Readiness.shared.ready("database")
                    failures = 0
                    let next = try await store.nextWake(watchBuffered: buffered.withLock { $0.maybe })
                    var deadline = min(try await wake(next: next.due), next.publish ?? .distantFuture, Date().addingTimeInterval(idleWake))
                    if let marks = owed.withLock({ $0.unmarked.values.min() }) {
                        deadline = min(deadline, marks.addingTimeInterval(markDelay))
                    }
                    if deadline > Date(), !stopping.withLock({ $0 }) {
                        _ = try await current?.wait(until: deadline)
                    }
                } catch {
                    if error is AMQPError {
                        Readiness.shared.failing("broker", "unreachable")
                    } else {
                        Readiness.shared.failing("database", "unreachable")
                    }
                    failures += 1
                    let delay = min(30.0, 0.25 * pow(2.0, Double(min(failures, 7))))
                    logger.error("beat round failed; retrying", metadata: ["error": "\(error)", "retry.in.s": "\(delay)"])
                    listener.withLock {
                        $0?.stop()
                        $0 = nil
                    }
                    try? await Task.sleep(for: .seconds(delay))
                }
            }
        } onGracefulShutdown: {
            stopping.withLock { $0 = true }
            listener.withLock { $0?.stop() }
        }
        // What was published and not yet marked is marked before the beat goes.
        do {
            try await markConfirmed(before: .distantFuture)
        } catch {
            logger.warning(
                "deliveries published and not marked at shutdown: another beat publishes them again when their lease ends",
                metadata: ["count": "\(owed.withLock { $0.unmarked.count })", "error": "\(error)"])
        }
    }

    /// When to claim the occurrences due at `next`: the lookahead before it, or earlier for a
    /// burst (`BurstLead`), which the rounds from then on claim whole.
    ///
    /// The count is taken again for another next due time, or after a second: schedule
    /// changes wake beat for a round each, and a count of a large burst is a scan of up to
    /// `BurstLead.countLimit` index entries.
    private func wake(next: Date?) async throws -> Date {
        guard let next else {
            ahead.withLock { $0 = nil }
            return .distantFuture
        }
        let now = Date()
        var start: BurstLead.Start?
        if lookahead > 0, next > now.addingTimeInterval(lookahead) {
            let counted = ahead.withLock { $0 }
            if let counted, counted.next == next, now.timeIntervalSince(counted.countedAt) < 1 {
                start = counted.start
            } else {
                let occurrences = try await store.countDue(until: next.addingTimeInterval(BurstLead.width), limit: lead.countLimit)
                start = lead.start(next: next, occurrences: occurrences)
                if let start {
                    logger.debug(
                        "a burst ahead: claimed early",
                        metadata: [
                            "due": "\(Timestamp.format(next))", "count": "\(occurrences)", "from": "\(Timestamp.format(start.from))",
                        ])
                }
                ahead.withLock { $0 = (next, now, start) }
            }
        } else {
            ahead.withLock { $0 = nil }
        }
        let wake = start?.from ?? next.addingTimeInterval(-lookahead)
        BeatMetrics.lead.record(max(0, next.timeIntervalSince(wake)))
        return wake
    }

    /// How far ahead of `now` a claim reaches: the lookahead, or to the end of a burst once
    /// its start has come.
    private func reach(now: Date) -> Double {
        let burstReach = ahead.withLock { ahead in
            ahead?.start.map { now >= $0.from ? $0.until.timeIntervalSince(now) : 0 } ?? 0
        }
        return max(lookahead, burstReach)
    }

    /// Publishes everything due now and everything left unpublished; returns the jobs published.
    @discardableResult
    public func runRound(now: @Sendable () -> Date = Date.init) async throws -> Int {
        let started = ContinuousClock.now
        var seconds: Double {
            let elapsed = ContinuousClock.now - started
            return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        }
        defer { BeatMetrics.roundDuration.record(seconds) }
        var published = try await payWhatIsOwed()
        var lag = 0.0
        // Publishing a batch overlaps with claiming the next: one batch in flight at a time.
        // A failed claim waits for the batch in flight instead of abandoning it half-sent.
        var publishing: Task<Void, any Error>?
        while true {
            let claimedAt = now()
            let claim: DeliveryStore.Claim
            do {
                claim = try await store.claimDue(now: claimedAt, limit: batchSize, lookahead: reach(now: claimedAt))
            } catch {
                _ = try? await publishing?.value
                throw error
            }
            let jobs = claim.jobs
            owe(jobs, leasedAt: Date())
            for (id, reason) in claim.quarantined {
                logger.error(
                    "schedule disabled: its next run cannot be computed",
                    metadata: ["schedule.id": "\(id.lowercasedText)", "reason": "\(reason)"])
            }
            if !claim.quarantined.isEmpty { BeatMetrics.quarantined.increment(by: claim.quarantined.count) }
            for missed in claim.missed {
                logger.warning(
                    "occurrence missed: found due after its schedule's catch-up window",
                    metadata: [
                        "schedule.id": "\(missed.scheduleID.map { $0.lowercasedText } ?? "")",
                        "delivery.id": "\(missed.deliveryID.lowercasedText)", "scheduled_for": "\(Timestamp.format(missed.scheduledFor))",
                    ])
            }
            if !claim.missed.isEmpty { BeatMetrics.missed.increment(by: claim.missed.count) }
            if !claim.buffered.isEmpty { buffered.withLock { $0.maybe = true } }
            if let earliest = jobs.map(\.scheduledFor).min() { lag = max(lag, claimedAt.timeIntervalSince(earliest)) }
            // A batch that fails stays owed: the next round publishes it first.
            try await publishing?.value
            publishing = nil
            if !jobs.isEmpty {
                publishing = Task { try await self.publish(jobs) }
                published += jobs.count
            }
            if claim.claimed < batchSize { break }
        }
        try await publishing?.value
        // Occurrences waiting behind their schedule's previous one, now done, go out below.
        if buffered.withLock({ $0.maybe || Date().timeIntervalSince($0.lookedAt) >= Self.bufferedLookEvery }) {
            try await store.releaseBuffered()
            let waiting = try await store.anyBuffered()
            buffered.withLock { $0 = (waiting, Date()) }
        }
        while true {
            let jobs = try await store.leaseUnpublished(limit: batchSize)
            if !jobs.isEmpty {
                // Hook calls, run-nows, backfills and jittered occurrences come this way, and
                // what a beat that stopped recorded but did not publish.
                logger.info("publishing recorded deliveries", metadata: ["count": "\(jobs.count)"])
                try await publish(jobs)
                published += jobs.count
            }
            if jobs.count < batchSize { break }
        }
        BeatMetrics.lastRun.record(Date().timeIntervalSince1970)
        BeatMetrics.lag.record(lag)
        await reportRound(seconds: seconds, lag: lag)
        return published
    }

    /// Tells the console about this round (`beat_status`), at most every `statusInterval`
    /// seconds; a failure is logged once and does not fail the round.
    private func reportRound(seconds: Double, lag: Double) async {
        let now = Date()
        let due = status.withLock { status in
            guard now.timeIntervalSince(status.reportedAt) >= Self.statusInterval else { return false }
            status.reportedAt = now
            return true
        }
        guard due else { return }
        do {
            try await console.recordRound(
                .init(beat: Self.identity, lastRoundAt: now, roundMilliseconds: seconds * 1000, lagMilliseconds: lag * 1000))
            status.withLock { $0.failing = false }
        } catch {
            let first = status.withLock { status in
                defer { status.failing = true }
                return !status.failing
            }
            if first { logger.warning("beat status not recorded", metadata: ["error": "\(error)"]) }
        }
    }

    static let statusInterval = 5.0
    /// This beat for the console: host and process.
    static let identity = "\(ProcessInfo.processInfo.hostName):\(ProcessInfo.processInfo.processIdentifier)"

    /// What an earlier round left owed (the database or the broker went away mid-round):
    /// marks what was published, then publishes what was not. Returns the jobs published.
    private func payWhatIsOwed() async throws -> Int {
        let leaseStart = Date().addingTimeInterval(-publishLease)
        let unpublished = owed.withLock { owed in
            // Leases that ran out: another beat may have published those; they are the
            // lease's now, not this beat's.
            owed.unpublished = owed.unpublished.filter { $0.value.leasedAt > leaseStart }
            return owed.unpublished.values.map(\.job)
        }
        try await markConfirmed(before: Date().addingTimeInterval(-markDelay))
        let jobs = unpublished.sorted { $0.scheduledFor < $1.scheduledFor }
        for start in stride(from: 0, to: jobs.count, by: max(1, batchSize)) {
            let batch = Array(jobs[start..<min(jobs.count, start + max(1, batchSize))])
            logger.info("publishing deliveries claimed before a failure", metadata: ["count": "\(batch.count)"])
            try await publish(batch)
        }
        return jobs.count
    }

    private func publish(_ jobs: [DeliveryJob]) async throws {
        let now = Date()
        let messages = routing.withLock { routing in JobBatch.messages(jobs, now: now, routing: &routing) }
        do {
            try await publisher.publish(messages)
        } catch {
            // Owed (if not already): the next round publishes them first. Another beat may
            // take them once their lease runs out, should this one stop meanwhile.
            owe(jobs, leasedAt: Date())
            throw error
        }
        let confirmedAt = Date()
        owed.withLock { owed in
            for job in jobs {
                owed.unpublished[job.deliveryID] = nil
                owed.unmarked[job.deliveryID] = markFrom(job, confirmedAt: confirmedAt)
            }
        }
        BeatMetrics.published.increment(by: jobs.count)
        logger.debug("published", metadata: ["count": "\(jobs.count)"])
    }

    /// From when `markDelay` counts for a job confirmed at `confirmedAt`. A job of a burst
    /// started early (published further ahead than the lookahead) is marked a quarter of the
    /// lease after its due time (at most half the lease after the confirm, well before
    /// another beat may take it), when the worker's record, which marks it too, has almost
    /// always come first: marked 5 s after the confirm, a burst published 10 s ahead was
    /// written once more per delivery, around its instant. Other jobs: the confirm, so
    /// that a steady load's marks stay where the lookahead puts them, off the due instants.
    func markFrom(_ job: DeliveryJob, confirmedAt: Date) -> Date {
        let ahead = job.scheduledFor.timeIntervalSince(confirmedAt)
        guard ahead > lookahead else { return confirmedAt }
        let markAt = min(ahead + publishLease / 4, publishLease / 2)
        return confirmedAt.addingTimeInterval(max(0, markAt - markDelay))
    }

    /// Marks published what the broker confirmed before `cutoff` (in batches), unless a
    /// worker recorded it first. What cannot be marked stays owed for the next round.
    func markConfirmed(before cutoff: Date) async throws {
        let ids = owed.withLock { $0.unmarked.filter { $0.value <= cutoff }.map(\.key) }
        for start in stride(from: 0, to: ids.count, by: 5000) {
            try await markPublished(Array(ids[start..<min(ids.count, start + 5000)]))
        }
    }

    /// Notes jobs this beat leased and must publish (keeping an earlier lease time).
    private func owe(_ jobs: [DeliveryJob], leasedAt: Date) {
        owed.withLock { owed in
            for job in jobs where owed.unpublished[job.deliveryID] == nil { owed.unpublished[job.deliveryID] = (job, leasedAt) }
        }
    }

    /// Notes deliveries published (a few tries). Until it is noted they stay owed, so this
    /// beat marks them when the database is back instead of publishing them again.
    private func markPublished(_ ids: [UUID]) async throws {
        for attempt in 1...3 {
            do {
                try await store.markPublished(ids)
                owed.withLock { owed in
                    for id in ids { owed.unmarked[id] = nil }
                }
                return
            } catch {
                logger.warning("cannot mark deliveries published", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                if attempt == 3 { throw error }
                try? await Task.sleep(for: .milliseconds(100 * attempt))
            }
        }
    }
}

/// Beat's metrics.
enum BeatMetrics {
    static let published = Counter(label: "scheduler_occurrences_published_total")
    /// Schedules beat disabled because their next run could not be computed.
    static let quarantined = Counter(label: "scheduler_schedules_quarantined_total")
    /// Occurrences recorded as missed: due longer ago than their schedule's catch-up window.
    static let missed = Counter(label: "scheduler_occurrences_missed_total")
    static let lastRun = Gauge(label: "scheduler_beat_last_run_timestamp_seconds")
    /// How late the most overdue occurrence of the last round was when claimed.
    static let lag = Gauge(label: "scheduler_beat_lag_seconds")
    /// How long the last round took (claim, record, publish, mark), in seconds.
    static let roundDuration = Gauge(label: "scheduler_beat_round_duration_seconds")
    /// How long before the next due time beat claims it: the lookahead, or more for a burst.
    static let lead = Gauge(label: "scheduler_beat_lead_seconds")
}
