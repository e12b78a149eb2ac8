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

/// scheduler-beat: publishes one job per due occurrence, then sleeps until the next due
/// time or until PostgreSQL says a schedule changed.
///
/// Each round claims due schedules with `FOR UPDATE SKIP LOCKED` (so several beats never
/// claim the same occurrence), records their deliveries and advances them in one
/// transaction, then publishes with confirms and marks them published. Work per round
/// grows with the number of due schedules: the claim and the wake-up query use the partial
/// index on `next_send_at`. A crash between commit and publish leaves the deliveries
/// unpublished; their lease runs out and a beat publishes them (same delivery ids).
public final class Beat: Service, Sendable {
    let store: DeliveryStore
    let publisher: AMQPPublisher
    let databaseURL: String
    let batchSize: Int
    let logger: Logger
    /// The longest sleep without a notification, in seconds.
    let idleWake: Double

    public init(configuration: Configuration, pool: PostgresPool, logger: Logger, idleWake: Double = 30) {
        store = DeliveryStore(pool: pool, publishLease: configuration.beatPublishLease, limits: configuration.scheduleLimits)
        publisher = AMQPPublisher(
            url: configuration.brokerURL, topology: DeliveryTopology.make(configuration.retryPolicy), logger: logger,
            heartbeat: configuration.brokerHeartbeat)
        databaseURL = configuration.databaseURL
        batchSize = configuration.beatBatchSize
        self.logger = logger
        self.idleWake = idleWake
    }

    public func run() async throws {
        let listener = Mutex<PostgresListener?>(nil)
        let stopping = Mutex(false)
        defer {
            listener.withLock { $0?.stop() }
            publisher.close()
        }
        await withGracefulShutdownHandler {
            var failures = 0
            while !stopping.withLock({ $0 }) {
                do {
                    var current = listener.withLock { $0 }
                    if current == nil {
                        let opened = try await PostgresListener(url: databaseURL, channel: "scheduler_schedules", logger: logger)
                        listener.withLock { $0 = opened }
                        current = opened
                    }
                    try await runRound()
                    failures = 0
                    let next = try await store.nextWake()
                    let deadline = min(next ?? .distantFuture, Date().addingTimeInterval(idleWake))
                    if deadline > Date(), !stopping.withLock({ $0 }) {
                        _ = try await current?.wait(until: deadline)
                    }
                } catch {
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
    }

    /// Publishes everything due now and everything left unpublished; returns the jobs published.
    @discardableResult
    public func runRound(now: @Sendable () -> Date = Date.init) async throws -> Int {
        let started = ContinuousClock.now
        defer {
            let elapsed = ContinuousClock.now - started
            BeatMetrics.roundDuration.record(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        }
        var published = 0
        var lag = 0.0
        // Publishing a batch overlaps with claiming the next: one batch in flight at a time.
        var publishing: Task<Void, any Error>?
        defer { publishing?.cancel() }
        while true {
            let claimedAt = now()
            let claim = try await store.claimDue(now: claimedAt, limit: batchSize)
            let jobs = claim.jobs
            for (id, reason) in claim.quarantined {
                logger.error(
                    "schedule disabled: its next run cannot be computed", metadata: ["schedule.id": "\(id)", "reason": "\(reason)"])
            }
            if !claim.quarantined.isEmpty { BeatMetrics.quarantined.increment(by: claim.quarantined.count) }
            if let earliest = jobs.map(\.scheduledFor).min() { lag = max(lag, claimedAt.timeIntervalSince(earliest)) }
            do {
                try await publishing?.value
            } catch {
                // This batch is claimed but will not be published in this round: the next may.
                try? await store.releaseLease(jobs.map(\.deliveryID))
                throw error
            }
            publishing = nil
            if !jobs.isEmpty {
                publishing = Task { try await self.publish(jobs) }
                published += jobs.count
            }
            if jobs.count + claim.quarantined.count < batchSize { break }
        }
        try await publishing?.value
        while true {
            let jobs = try await store.leaseUnpublished(limit: batchSize)
            if !jobs.isEmpty {
                logger.info("publishing deliveries left unpublished", metadata: ["count": "\(jobs.count)"])
                try await publish(jobs)
                published += jobs.count
            }
            if jobs.count < batchSize { break }
        }
        BeatMetrics.lastRun.record(Date().timeIntervalSince1970)
        BeatMetrics.lag.record(lag)
        return published
    }

    private func publish(_ jobs: [DeliveryJob]) async throws {
        do {
            try await publisher.publish(jobs.map { $0.message() })
        } catch {
            // Let the next round (or another beat) publish them as soon as the broker is back.
            try? await store.releaseLease(jobs.map(\.deliveryID))
            throw error
        }
        BeatMetrics.published.increment(by: jobs.count)
        // They are published: failing to note it only means a later beat publishes them
        // again (same delivery ids; workers skip what is delivered). Try a few times.
        for attempt in 1...3 {
            do {
                try await store.markPublished(jobs.map(\.deliveryID))
                break
            } catch {
                logger.warning("cannot mark deliveries published", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
                if attempt == 3 { throw error }
                try? await Task.sleep(for: .milliseconds(100 * attempt))
            }
        }
        logger.debug("published", metadata: ["count": "\(jobs.count)"])
    }
}

/// Beat's metrics.
enum BeatMetrics {
    static let published = Counter(label: "scheduler_occurrences_published_total")
    /// Schedules beat disabled because their next run could not be computed.
    static let quarantined = Counter(label: "scheduler_schedules_quarantined_total")
    static let lastRun = Gauge(label: "scheduler_beat_last_run_timestamp_seconds")
    /// How late the most overdue occurrence of the last round was when claimed.
    static let lag = Gauge(label: "scheduler_beat_lag_seconds")
    /// How long the last round took (claim, record, publish, mark), in seconds.
    static let roundDuration = Gauge(label: "scheduler_beat_round_duration_seconds")
}
