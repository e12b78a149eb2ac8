import AMQP
import Delivery
import Dispatch
import Foundation
import HTTPClient
import Logging
import Metrics
import Postgres
import SchedulerCore
import SchedulerStore
import Synchronization

/// The worker's engine: one thread owns the consuming AMQP connection and a libcurl multi
/// handle, and waits on both at once (`curl_multi_poll` with the AMQP socket as an extra
/// descriptor). Database reads and writes and the retry/dead-letter publishes run as tasks
/// on their own connections; their results come back through `inbox`, with a wakeup.
///
/// A job is acked only after its outcome is recorded (and, for a retry or a dead letter,
/// after the message that carries it on was confirmed by the broker). On stop it takes no
/// new jobs, lets the transfers in flight finish, and hands back (nack, requeue) the rest.
///
/// `@unchecked Sendable`: everything but `inbox` and `stopping` (both behind a mutex) is
/// touched only by the loop's own thread.
final class DeliveryLoop: @unchecked Sendable {
    struct Settings: Sendable {
        let brokerURL: String
        let prefetch: Int
        let timeout: Double
        let policy: RetryPolicy
        let signer: WebhookSigner?
        /// AMQP heartbeat in seconds (0: none): a silent broker is noticed after two.
        var heartbeat: Int = 10
        /// A job redelivered this many times (its workers stopped without an outcome) is poison.
        var maxRedeliveries: Int = 5
        /// Payloads larger than this are not read, let alone POSTed: the job is dead-lettered.
        var maximumPayloadBytes: Int = ScheduleLimits.standard.maximumPayloadBytes
    }

    /// Results coming back to the loop's thread (errors and ids only: safe to send).
    enum Event: @unchecked Sendable {
        case targets(generation: Int, [UInt64], [UUID: DeliveryStore.Target])
        case lookupFailed(generation: Int, [UInt64], any Error)
        case finished(generation: Int, [UInt64])
        case finishFailed(generation: Int, [Finalization], any Error)
    }

    /// What happens to a job when it leaves the worker.
    struct Finalization: @unchecked Sendable {
        let tag: UInt64
        /// A message to publish first (to a retry queue or the dead letters).
        let message: AMQPOutgoingMessage?
        /// The record to write, if any.
        let attempt: DeliveryStore.Attempt?
    }

    struct InFlight {
        let delivery: AMQPDelivery
        let job: DeliveryJob
        let attempt: Int
    }

    private let settings: Settings
    private let store: DeliveryStore
    private let publisher: AMQPPublisher
    private let logger: Logger
    private let multi = CurlMulti(maximumResponseBytes: DeliveryLimits.maximumResponseBytes)
    private let inbox = Mutex<[Event]>([])
    private let stopping = Mutex(false)
    private let done = Mutex<CheckedContinuation<Void, Never>?>(nil)
    private let finishedFlag = Mutex(false)

    private var consumer: AMQPConnection?
    private var generation = 0
    private var jobs: [UInt64: InFlight] = [:]
    /// POSTs in flight on this connection: transfer id → delivery tag. Transfer ids are
    /// never reused, so an outcome that arrives after a reconnect (when delivery tags
    /// start again at 1) cannot be taken for another job's.
    private var transfers: [UInt64: UInt64] = [:]
    private var nextTransferID: UInt64 = 1
    private var lookups = Batch<UInt64>()
    private var finalizations = Batch<Finalization>()
    private let channel: UInt16 = 1

    init(settings: Settings, pool: PostgresPool, logger: Logger) {
        self.settings = settings
        store = DeliveryStore(pool: pool)
        publisher = AMQPPublisher(
            url: settings.brokerURL, topology: DeliveryTopology.make(settings.policy), logger: logger, heartbeat: settings.heartbeat)
        self.logger = logger
    }

    func start() {
        let thread = Thread { [self] in
            run()
            publisher.close()
            let continuation = done.withLock { continuation in
                finishedFlag.withLock { $0 = true }
                defer { continuation = nil }
                return continuation
            }
            continuation?.resume()
        }
        thread.name = "delivery-loop"
        thread.start()
    }

    func stop() {
        stopping.withLock { $0 = true }
        multi.wakeup()
    }

    /// Returns when the loop has stopped.
    func finished() async {
        await withCheckedContinuation { continuation in
            let already = finishedFlag.withLock { $0 }
            if already {
                continuation.resume()
            } else {
                done.withLock { $0 = continuation }
                if finishedFlag.withLock({ $0 }) {
                    done.withLock {
                        $0?.resume(); $0 = nil
                    }
                }
            }
        }
    }

    private var isStopping: Bool { stopping.withLock { $0 } }

    // MARK: The loop

    private func run() {
        var failures = 0
        var stopDeadline: Date?
        while true {
            if isStopping {
                let deadline = stopDeadline ?? Date().addingTimeInterval(settings.timeout + 5)
                if stopDeadline == nil {
                    stopDeadline = deadline
                    logger.info("stopping: finishing deliveries in flight", metadata: ["in.flight": "\(jobs.count)"])
                }
                if jobs.isEmpty || Date() >= deadline { break }
            }
            if consumer == nil && !isStopping {
                do {
                    try connect()
                    failures = 0
                } catch {
                    failures += 1
                    let delay = min(30.0, 0.25 * pow(2.0, Double(min(failures, 7))))
                    logger.error("cannot consume deliveries; retrying", metadata: ["error": "\(error)", "retry.in.s": "\(delay)"])
                    sleepUnlessStopped(delay)
                    continue
                }
            }
            do {
                if !isStopping { try receive() }
                handleInbox()
                startLookups()
                for outcome in multi.perform() { handle(outcome) }
                flushFinalizations()
                let readable = multi.poll(
                    extraDescriptor: consumer?.socket, timeoutMilliseconds: consumer?.hasBufferedFrames == true ? 0 : 100)
                if readable || consumer?.hasBufferedFrames == true, !isStopping { try receive() }
            } catch {
                logger.error("lost the broker connection; unacked jobs return to the queue", metadata: ["error": "\(error)"])
                dropConnection()
            }
        }
        // Hand back what did not finish.
        if let consumer {
            for tag in jobs.keys.sorted() { try? consumer.nack(tag, requeue: true, channel: channel) }
            consumer.close()
        }
        self.consumer = nil
        logger.info("stopped", metadata: ["handed.back": "\(jobs.count)"])
    }

    private func connect() throws {
        let connection = try AMQPConnection.openDeclaring(
            url: settings.brokerURL, heartbeat: settings.heartbeat, channel: channel, topology: DeliveryTopology.make(settings.policy))
        try connection.consume(queue: DeliveryTopology.queue, prefetch: settings.prefetch, channel: channel)
        consumer = connection
        generation += 1
        logger.info("consuming", metadata: ["queue": "\(DeliveryTopology.queue)", "prefetch": "\(settings.prefetch)"])
    }

    private func dropConnection() {
        consumer?.close()
        consumer = nil
        generation += 1
        // Their delivery tags died with the connection: the broker delivers them again, so
        // the POSTs in flight are abandoned (their outcomes would have no job to settle).
        let abandoned = multi.cancelAll()
        if abandoned > 0 { logger.info("abandoned POSTs in flight; their jobs return to the queue", metadata: ["count": "\(abandoned)"]) }
        transfers.removeAll()
        jobs.removeAll()
        lookups = Batch()
        finalizations = Batch()
    }

    private func sleepUnlessStopped(_ seconds: Double) {
        let until = Date().addingTimeInterval(seconds)
        while Date() < until && !isStopping { Thread.sleep(forTimeInterval: 0.05) }
    }

    /// Takes the deliveries waiting on the connection.
    private func receive() throws {
        guard let consumer else { return }
        while let delivery = try consumer.nextDelivery(timeout: 0) {
            accept(delivery)
        }
    }

    private func accept(_ delivery: AMQPDelivery) {
        // Headers come from whoever published: clamp before any arithmetic.
        let attempt = Int(min(max(1, delivery.headers[DeliveryHeaders.attempt]?.intValue ?? 1), Int64(DeliveryLimits.maximumAttempt)))
        let redeliveries = delivery.headers[DeliveryHeaders.deliveryCount]?.intValue ?? 0
        do {
            let job = try DeliveryJob(body: delivery.body)
            jobs[delivery.deliveryTag] = InFlight(delivery: delivery, job: job, attempt: attempt)
            if redeliveries >= Int64(settings.maxRedeliveries) {
                // Every worker that took it stopped before an outcome: do not let it take the next.
                let reason = "taken \(redeliveries + 1) times without an outcome (a worker stopped while handling it each time)"
                logger.error("poison job dead-lettered", metadata: ["delivery.id": "\(job.deliveryID)", "reason": "\(reason)"])
                DeliveryMetrics.skipped("poison")
                finalizations.add(
                    Finalization(
                        tag: delivery.deliveryTag,
                        message: deadLetter(delivery, reason: reason, status: nil, error: nil, attempts: attempt),
                        attempt: .init(
                            id: job.deliveryID, state: .dead, attempts: attempt, status: nil, error: reason, latencyMilliseconds: nil)))
                return
            }
            lookups.add(delivery.deliveryTag)
        } catch {
            logger.warning("malformed job dead-lettered", metadata: ["reason": "\(error.message)"])
            DeliveryMetrics.skipped("malformed")
            jobs[delivery.deliveryTag] = InFlight(
                delivery: delivery, job: DeliveryJob(deliveryID: UUID(), scheduleID: nil, scheduledFor: Date(), kind: .schedule),
                attempt: attempt)
            finalizations.add(
                Finalization(
                    tag: delivery.deliveryTag,
                    message: deadLetter(delivery, reason: error.message, status: nil, error: nil, attempts: attempt),
                    attempt: nil))
        }
    }

    // MARK: Steps

    private func startLookups() {
        let tags = lookups.take()
        guard !tags.isEmpty else { return }
        let ids = tags.compactMap { jobs[$0]?.job.deliveryID }
        let generation = generation
        let maximumBodyBytes = settings.maximumPayloadBytes
        post { [store] in
            do {
                return .targets(generation: generation, tags, try await store.targets(ids, maximumBodyBytes: maximumBodyBytes))
            } catch {
                return .lookupFailed(generation: generation, tags, error)
            }
        }
    }

    private func handleInbox() {
        let events = inbox.withLock { events in
            defer { events.removeAll() }
            return events
        }
        for event in events {
            switch event {
            case .targets(let generation, let tags, let targets) where generation == self.generation:
                for tag in tags { if let job = jobs[tag] { begin(tag: tag, job: job, target: targets[job.job.deliveryID]) } }
            case .lookupFailed(let generation, let tags, let error) where generation == self.generation:
                logger.error("cannot read delivery records; will try again", metadata: ["error": "\(error)"])
                lookups.failed(tags, retryAfter: 0.5)
            case .finished(let generation, let tags) where generation == self.generation:
                for tag in tags {
                    guard jobs.removeValue(forKey: tag) != nil else { continue }
                    do {
                        try consumer?.ack(tag, channel: channel)
                    } catch {
                        logger.error("ack failed", metadata: ["error": "\(error)"])
                    }
                }
            case .finishFailed(let generation, let finalizations, let error) where generation == self.generation:
                logger.error("cannot record outcomes or publish retries; will try again", metadata: ["error": "\(error)"])
                self.finalizations.failed(finalizations, retryAfter: 1)
            default:
                continue  // from a connection that is gone
            }
        }
    }

    /// Starts the POST, or settles a job that must not be POSTed.
    private func begin(tag: UInt64, job: InFlight, target: DeliveryStore.Target?) {
        guard let target else {
            finalizations.add(
                Finalization(
                    tag: tag,
                    message: deadLetter(
                        job.delivery, reason: "no delivery record for this job", status: nil, error: nil, attempts: job.attempt),
                    attempt: nil))
            return
        }
        switch target.state {
        case .cancelled, .delivered, .purged:
            // Disabled or deleted after it was queued, or a repeat of a delivered job.
            logger.debug("job not delivered", metadata: ["delivery.id": "\(job.job.deliveryID)", "state": "\(target.state)"])
            DeliveryMetrics.skipped(target.state == .delivered ? "duplicate" : "cancelled")
            finalizations.add(Finalization(tag: tag, message: nil, attempt: nil))
            return
        case .queued, .retrying, .dead:
            break
        }
        guard let endpoint = target.endpoint else {
            finalizations.add(Finalization(tag: tag, message: nil, attempt: nil))
            return
        }
        // The row may have been written by hand or before a bound was set: check it again.
        if let problem = Self.problem(endpoint: endpoint, target: target, maximumPayloadBytes: settings.maximumPayloadBytes) {
            refuse(tag: tag, job: job, reason: problem)
            return
        }
        let body = Array((target.body.isEmpty || target.body == "null" ? "{}" : target.body).utf8)
        let id = job.job.deliveryID.uuidString.lowercased()
        var headers = [
            "Content-Type: application/json",
            "Idempotency-Key: \(id)",
            "X-Scheduler-Delivery-Id: \(id)",
            "X-Scheduler-Scheduled-For: \(Timestamp.format(job.job.scheduledFor))",
            "X-Scheduler-Attempt: \(job.attempt)",
        ]
        if let schedule = job.job.scheduleID { headers.append("X-Scheduler-Schedule-Id: \(schedule.uuidString.lowercased())") }
        if let token = target.authToken, !token.isEmpty { headers.append("Authorization: Token \(token)") }
        if let signer = settings.signer {
            headers += signer.headers(id: id, timestamp: Int(Date().timeIntervalSince1970), body: body)
        }
        if job.attempt == 1 { DeliveryMetrics.lateness.record(Date().timeIntervalSince(job.job.scheduledFor)) }
        let transfer = nextTransferID
        nextTransferID += 1
        do {
            try multi.start(HTTPPost(id: transfer, url: endpoint, headers: headers, body: body, timeout: settings.timeout))
            transfers[transfer] = tag
        } catch let error as HTTPPostError {
            // Nothing a retry could fix: a header value or URL libcurl must not send.
            refuse(tag: tag, job: job, reason: "cannot be sent: \(error)")
        } catch {
            finish(tag: tag, job: job, status: nil, error: "\(error)", retryAfter: nil, seconds: 0)
        }
    }

    /// What makes a stored target undeliverable, if anything.
    static func problem(endpoint: String, target: DeliveryStore.Target, maximumPayloadBytes: Int) -> String? {
        if !ScheduleValidation.isHTTPURL(endpoint) { return "the endpoint is not an http(s) URL this worker may POST to" }
        if target.bodyBytes > maximumPayloadBytes {
            return "the payload has \(target.bodyBytes) bytes, more than MAX_PAYLOAD_BYTES (\(maximumPayloadBytes))"
        }
        if let token = target.authToken, token.unicodeScalars.contains(where: ScheduleValidation.isControl) {
            return "the auth_token holds control characters, which cannot be sent in a header"
        }
        return nil
    }

    /// Dead-letters a job that must not be POSTed, with the reason, and records it.
    private func refuse(tag: UInt64, job: InFlight, reason: String) {
        logger.warning("delivery refused", metadata: ["delivery.id": "\(job.job.deliveryID)", "reason": "\(reason)"])
        DeliveryMetrics.skipped("refused")
        finalizations.add(
            Finalization(
                tag: tag,
                message: deadLetter(job.delivery, reason: reason, status: nil, error: nil, attempts: job.attempt),
                attempt: .init(
                    id: job.job.deliveryID, state: .dead, attempts: job.attempt, status: nil, error: reason, latencyMilliseconds: nil)))
    }

    private func handle(_ outcome: HTTPOutcome) {
        // An outcome whose transfer is not of this connection's jobs settles nothing.
        guard let tag = transfers.removeValue(forKey: outcome.id), let job = jobs[tag] else { return }
        finish(
            tag: tag, job: job, status: outcome.status, error: outcome.error, retryAfter: outcome.retryAfter,
            seconds: outcome.seconds)
    }

    private func finish(tag: UInt64, job: InFlight, status: Int?, error: String?, retryAfter: String?, seconds: Double) {
        let decision = settings.policy.decide(status: status, error: error, attempt: job.attempt, retryAfter: retryAfter)
        let latency = seconds * 1000
        DeliveryMetrics.attempt(decision: decision, status: status, seconds: seconds)
        switch decision {
        case .delivered:
            finalizations.add(
                Finalization(
                    tag: tag, message: nil,
                    attempt: .init(
                        id: job.job.deliveryID, state: .delivered, attempts: job.attempt, status: status, error: nil,
                        latencyMilliseconds: latency)))
        case .retry(let index, let reason):
            var headers = job.delivery.headers
            headers[DeliveryHeaders.attempt] = .int(Int64(job.attempt + 1))
            let message = AMQPOutgoingMessage(
                exchange: DeliveryTopology.retryName(milliseconds: settings.policy.delays[index]),
                routingKey: job.delivery.routingKey, body: job.delivery.body, messageID: job.delivery.messageID, headers: headers)
            logger.info(
                "delivery failed; will retry",
                metadata: ["delivery.id": "\(job.job.deliveryID)", "reason": "\(reason)", "attempt": "\(job.attempt)"])
            finalizations.add(
                Finalization(
                    tag: tag, message: message,
                    attempt: .init(
                        id: job.job.deliveryID, state: .retrying, attempts: job.attempt, status: status, error: error,
                        latencyMilliseconds: latency)))
        case .dead(let reason):
            logger.warning("delivery failed for good", metadata: ["delivery.id": "\(job.job.deliveryID)", "reason": "\(reason)"])
            finalizations.add(
                Finalization(
                    tag: tag,
                    message: deadLetter(job.delivery, reason: reason, status: status, error: error, attempts: job.attempt),
                    attempt: .init(
                        id: job.job.deliveryID, state: .dead, attempts: job.attempt, status: status, error: error ?? reason,
                        latencyMilliseconds: latency)))
        }
    }

    private func deadLetter(_ delivery: AMQPDelivery, reason: String, status: Int?, error: String?, attempts: Int) -> AMQPOutgoingMessage {
        var headers = delivery.headers
        headers[DeliveryHeaders.reason] = .string(reason)
        headers[DeliveryHeaders.attempts] = .int(Int64(attempts))
        headers[DeliveryHeaders.failedAt] = .string(Timestamp.format(Date()))
        if let status { headers[DeliveryHeaders.lastStatus] = .int(Int64(status)) }
        if let error { headers[DeliveryHeaders.lastError] = .string(error) }
        return AMQPOutgoingMessage(
            exchange: DeliveryTopology.deadExchange, routingKey: delivery.routingKey, body: delivery.body,
            messageID: delivery.messageID, headers: headers)
    }

    /// Publishes what must be published, records what must be recorded, then acks: in one
    /// batch per turn of the loop.
    private func flushFinalizations() {
        let batch = finalizations.take()
        guard !batch.isEmpty else { return }
        let generation = generation
        post { [store, publisher] in
            do {
                try await publisher.publish(batch.compactMap(\.message))
                try await store.record(batch.compactMap(\.attempt))
                return .finished(generation: generation, batch.map(\.tag))
            } catch {
                return .finishFailed(generation: generation, batch, error)
            }
        }
    }

    private func post(_ work: @escaping @Sendable () async -> Event) {
        Task { [self] in
            let event = await work()
            inbox.withLock { $0.append(event) }
            multi.wakeup()
        }
    }
}

/// The worker's metrics (low-cardinality labels only).
enum DeliveryMetrics {
    static let lateness = Recorder(label: "scheduler_delivery_lateness_seconds", aggregate: true)
    static let duration = Recorder(label: "scheduler_delivery_duration_seconds", aggregate: true)
    static let attempts = Counter(label: "scheduler_delivery_attempts_total")

    static func attempt(decision: DeliveryDecision, status: Int?, seconds: Double) {
        attempts.increment()
        duration.record(seconds)
        let outcome: String
        switch decision {
        case .delivered: outcome = "delivered"
        case .retry: outcome = "retry"
        case .dead: outcome = "dead"
        }
        let statusClass = status.map { "\($0 / 100)xx" } ?? "none"
        Counter(label: "scheduler_deliveries_total", dimensions: [("outcome", outcome), ("status_class", statusClass)]).increment()
    }

    static func skipped(_ outcome: String) {
        Counter(label: "scheduler_deliveries_total", dimensions: [("outcome", outcome), ("status_class", "none")]).increment()
    }
}

/// Work gathered for one batch per turn of the loop; a batch that failed is tried again
/// after a pause, with whatever came since.
struct Batch<Item> {
    private var pending: [Item] = []
    private var failedItems: [Item] = []
    private var retryAt: Date?

    mutating func add(_ item: Item) { pending.append(item) }

    /// What to do now: the new items, and the failed ones once their pause is over.
    mutating func take(now: Date = Date()) -> [Item] {
        if let retryAt, now >= retryAt {
            pending.append(contentsOf: failedItems)
            failedItems.removeAll()
            self.retryAt = nil
        }
        defer { pending.removeAll() }
        return pending
    }

    mutating func failed(_ items: [Item], retryAfter seconds: Double) {
        failedItems.append(contentsOf: items)
        retryAt = Date().addingTimeInterval(seconds)
    }
}
