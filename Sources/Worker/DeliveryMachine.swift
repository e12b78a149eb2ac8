import AMQP
import DeliveryQueues
import Foundation
import HTTPClient
import SchedulerCore
import SchedulerStore

/// The worker's decisions, as a pure value: it takes events (a job received, its target
/// read, a POST finished, an outcome settled, the connection lost, a stop, a tick of the
/// clock) and returns the actions to carry out. It does no I/O and reads no clock: the
/// time comes with each event. `DeliveryLoop` is the thin shell that feeds it and acts.
///
/// A job's path: received → read (its target, in a batch) → POSTed → settled (a retry or
/// dead letter published and confirmed, the attempt recorded, in a batch) → acked. A job
/// is acked only after it is settled; on a lost connection everything of that connection
/// is dropped (the broker delivers the jobs again); on stop the POSTs in flight finish and
/// every other job is handed back.
struct DeliveryMachine {
    struct Settings: Sendable {
        var policy: RetryPolicy
        /// Seconds for a receiver's answer, and to connect to it.
        var timeout: Double
        var connectTimeout: Double = 10
        var signer: WebhookSigner?
        /// A job redelivered this many times (its workers stopped without an outcome) is poison.
        var maxRedeliveries: Int = 5
        /// A batch message redelivered this many times is split into messages of one job.
        var splitBatchAfter: Int = 2
        /// Payloads larger than this are not read, let alone POSTed: the job is dead-lettered.
        var maximumPayloadBytes: Int = ScheduleLimits.standard.maximumPayloadBytes
        /// Batches of target reads, and of settlements, in flight at once; while that many
        /// are, new work gathers into the next batch.
        var batchesInFlight: Int = 2
        /// A read started while no other is in flight takes at most this many jobs, so that
        /// the first POSTs of a batch released at once (1,000 due at the same instant) start
        /// after a short read; one started beside others takes at most twice the largest of
        /// them (and at least this many), so that each read returns while the POSTs of those
        /// before it are still going out (100, 200, 400, then the rest, for 1,000), not one
        /// long read of the rest that the first POSTs finish well before.
        var firstReadBatch: Int = 100
        /// Pauses before a failed read or settlement is tried again.
        var readRetryDelay: Double = 0.5
        var settleRetryDelay: Double = 1
        /// While POSTs are in flight or about to start, outcomes gather for up to this many
        /// seconds before they are recorded and acked: the POSTs of jobs due together go out
        /// first, without the recording's CPU in their way, and the records go in fewer,
        /// larger batches. Never more than nine tenths of the worker's jobs wait like this,
        /// nor, while the queue holds more due jobs for this worker, half of its `window`.
        var settleDelay: Double = 0.1
        /// While held jobs that fell due still wait to be admitted or for their receiver (a
        /// burst the worker held), outcomes gather for up to this many seconds instead, however
        /// many: the two cores go to the burst's POSTs, and its records and acks follow it (a
        /// 50,000 burst: records took 0.3 of a core while it went out, measured).
        var burstSettleDelay: Double = 2
        /// Held jobs admitted at most in one turn when they fall due; the rest follow in the
        /// next turns (a tick at once). Admitting 50,000 in one turn took the worker 0.23 s
        /// before the first POST left, with the other core idle (measured).
        var heldAdmitBatch: Int = 2_000
        /// Jobs the broker hands this worker unacked at most from the main queue
        /// (`WORKER_PREFETCH`; the held queue has a window of its own, `WORKER_HELD_WINDOW`,
        /// not counted here while its jobs are held). When jobs
        /// that were due on arrival fill it (a burst, a backlog), the jobs behind them in the
        /// queue wait for acks: outcomes then stop gathering at half of it, so that the next
        /// jobs arrive while the rest of these are POSTed, instead of the POSTs stopping
        /// while a whole window is recorded, acked and handed over again.
        var window: Int = 1000
        /// Each receiver's limits and circuit breaker.
        var receivers = Receiver.Settings()
        /// Where deliveries may go (literal addresses here; resolved ones in the HTTP box).
        var egress = EgressPolicy()
        /// How long a parked job waits in the broker before it is tried again: short when
        /// its receiver is only busy, long when it is paused or open.
        var shortPark: Int = DeliveryTopology.parkDelays[0]
        var longPark: Int = DeliveryTopology.parkDelays[1]
        /// Seconds a stop waits for the POSTs in flight to finish and settle.
        var stopGrace: Double { connectTimeout + timeout + 5 }
        /// A job that arrives before its due time (beat publishes `BEAT_LOOKAHEAD` early) is
        /// held until then, if that is at most this many seconds away; one due later (a clock
        /// far off, or a hostile message) is handled at once, as every job was before.
        var maximumHold: Double = 15
        /// Bytes of targets (payload, endpoint, token) read ahead for held jobs, at most: a held
        /// job's target is read while it is held and POSTed at its instant without a read; one
        /// beyond this is read at its instant. 0: none read ahead.
        var readAheadBytes: Int = 64 << 20
        /// Held jobs whose targets are read ahead in one statement, at most; fewer gather for
        /// up to `readAheadGather` seconds first (a steady 1,000 a second arrives a few at a
        /// time: read as they came, it took twice the statements of reads at the instant).
        var readAheadBatch: Int = 2_000
        var readAheadGather: Double = 0.2
        /// A payload larger than this is not read ahead (its job is read at its instant), so
        /// that a batch read ahead stays small whatever its jobs' payloads.
        var readAheadMaximumBodyBytes: Int = 16_384
    }

    enum Event {
        case connected(generation: Int)
        /// Deliveries that arrived together (handled as one: their reads share a batch).
        case deliveries([AMQPDelivery], generation: Int)
        case lost(generation: Int)
        case read(batch: Int, [UUID: DeliveryStore.Target])
        /// These schedules changed (an edit, a pause, a delete): targets read ahead for their
        /// held jobs are stale.
        case targetsChanged([UUID])
        /// Whether the loop hears of every change of a schedule (`targetsChanged`): targets are
        /// read ahead only while it does; when it stops, those read are forgotten.
        case targetsWatched(Bool)
        case readFailed(batch: Int, reason: String)
        /// POSTs that finished together.
        case outcomes([HTTPOutcome])
        case settled(batch: Int)
        /// A settlement batch failed; `published` when its messages were confirmed before
        /// the failure (recording failed), so that the retry does not publish them again.
        case settleFailed(batch: Int, reason: String, published: Bool = false)
        /// An operator's command for one receiver (`scheduler-ctl receivers`).
        case command(receiver: String, Receiver.Command)
        /// This worker's shares of the limits admins set (`scheduler-ctl receivers set`), by
        /// receiver: the whole set each time.
        case limits([String: ReceiverLimits])
        case stop
        case tick

        static func received(_ delivery: AMQPDelivery, generation: Int) -> Event { .deliveries([delivery], generation: generation) }
        static func posted(_ outcome: HTTPOutcome) -> Event { .outcomes([outcome]) }
    }

    enum Action {
        /// Read the targets of these deliveries; answer `.read` or `.readFailed`.
        case read(batch: Int, ids: [UUID])
        /// The same for held jobs, ahead of their time: payloads up to
        /// `Settings.readAheadMaximumBodyBytes` only.
        case readAhead(batch: Int, ids: [UUID])
        /// Hand this POST to libcurl; its outcome comes back as `.posted`.
        case post(HTTPPost)
        /// Publish the messages (confirmed), then record the attempts; answer `.settled` or
        /// `.settleFailed`.
        case settle(batch: Int, [Settlement])
        case ack([UInt64], generation: Int)
        /// Return these deliveries to the queue untouched.
        case handBack([UInt64], generation: Int)
        case cancelPosts([UInt64])
        /// Take no more deliveries.
        case pauseConsuming
        /// Everything is settled or handed back: the loop may end.
        case finish
        /// Something to log and count.
        case note(Note)
    }

    enum Note: Equatable {
        case poison(UUID, reason: String)
        case malformed(reason: String)
        case refused(UUID, reason: String)
        case skipped(UUID, state: Delivery.State)
        /// A second copy of a job the worker holds, acked without a POST.
        case repeated(UUID)
        /// A second copy of a job whose own outcome is being recorded: sent to a park queue,
        /// to come back once that is done (it may be the job's own park or retry message).
        case repeatedWhileSettling(UUID)
        case attempted(UUID, attempt: Int, decision: DeliveryDecision, status: Int?, seconds: Double)
        case late(seconds: Double)
        /// A job held until its due time went on without a read: its target was read ahead.
        case readAhead
        case readFailed(reason: String)
        case settleFailed(reason: String)
        case abandoned(posts: Int, jobs: Int)
        case stopping(inFlight: Int, handedBack: Int)
        case stopped(handedBack: Int)
        /// A batch handed out `redeliveries` times before, returned as `jobs` messages of one job.
        case split(jobs: Int, redeliveries: Int)
        case parked(Receiver.ParkReason)
        case receiver(String, Receiver.Transition)
    }

    /// What happens to a job when it leaves the worker.
    struct Settlement: Sendable {
        let tag: UInt64
        /// A message to publish first (to a retry queue, a park queue or the dead letters);
        /// nil once it is published, should recording fail after that.
        var message: AMQPOutgoingMessage?
        /// The record to write, if any.
        let attempt: DeliveryStore.Attempt?
    }

    struct Job {
        enum Phase: Equatable {
            /// Arrived early: held, unread, until its due time.
            case holding
            case waitingToRead, reading
            /// Ready, waiting in the worker for a request slot of its receiver.
            case waitingForReceiver
            case posting(transfer: UInt64)
            case settling
        }

        let delivery: AMQPDelivery
        /// Nil when the message is not a job (it is dead-lettered as malformed).
        let job: DeliveryJob?
        let attempt: Int
        var phase: Phase
        /// Its receiver and its request, once read.
        var receiver: String? = nil
        var post: HTTPPost? = nil
        /// When its POST was handed to libcurl.
        var startedAt: Date? = nil
        /// The headers that depend on the job alone (`requestHeaders`), made while it is held,
        /// so that the due instant spends no time on them.
        var headers: [String]? = nil
        /// Held by this worker until its due time: in its hands already (see `Receiver.admit`).
        var heldUntilDue = false
        /// Its target, read while it was held (`Settings.readAheadBytes`).
        var target: DeliveryStore.Target? = nil
    }

    /// Work gathered for the next batch, and what failed and waits to be tried again.
    struct Gathering<Item> {
        var pending: [Item] = []
        var failed: [Item] = []
        var retryAt: Date?
        var inFlight: [Int: [Item]] = [:]

        mutating func retryDue(_ now: Date) {
            if let retryAt, now >= retryAt {
                pending += failed
                failed.removeAll()
                self.retryAt = nil
            }
        }

        mutating func fail(batch: Int, at now: Date, pause: Double) -> [Item]? {
            guard let items = inFlight.removeValue(forKey: batch) else { return nil }
            failed += items
            retryAt = now.addingTimeInterval(pause)
            return items
        }
    }

    let settings: Settings
    private(set) var generation = 0
    /// The jobs in hand, by key: a message's delivery tag, or for a job of a batch message
    /// (`JobBatch`) a key of its own (`batchKeyBit`; see `batches`).
    private(set) var jobs: [UInt64: Job] = [:]
    /// Delivery tags count from 1 on each connection and never reach this bit: a job of a batch
    /// has it set in its key.
    static let batchKeyBit: UInt64 = 1 << 63
    private var nextBatchKey: UInt64 = 1
    /// A batch job's message: its key → the message's delivery tag.
    private var batchTags: [UInt64: UInt64] = [:]
    /// Batch messages in hand, by delivery tag: their jobs, and those not acked yet. The message
    /// is acked with its last job.
    private(set) var batches: [UInt64: (size: Int, left: Int)] = [:]
    /// POSTs in flight: transfer id → delivery tag. Transfer ids are never reused, so an
    /// outcome that arrives after a reconnect (delivery tags start again at 1) cannot be
    /// taken for another job's.
    private(set) var transfers: [UInt64: UInt64] = [:]
    private var nextTransfer: UInt64 = 1
    private var nextBatch = 1
    /// The tag of the job with each delivery id (entries whose job has left are stale: check
    /// `jobs`), to know a second copy of a job the worker holds.
    private var byID: [UUID: UInt64] = [:]
    /// Since when the pending settlements have been gathering.
    private var settlementsSince: Date?
    /// A pending settlement publishes a message (a park frees a prefetch slot for other
    /// receivers, a retry or a dead letter must not wait) or retries a failed batch: no gathering.
    private var settlementsUrgent = false
    /// The last jobs to arrive were due on arrival and filled the window (see `Settings.window`).
    private var backlogged = false
    /// Jobs of settled batches not acked yet, by batch: they wait for an earlier batch (`ackSettled`).
    private var settledUnacked: [Int: [UInt64]] = [:]
    /// Jobs held until their due time that wait for their receiver (see `Settings.burstSettleDelay`).
    private(set) var heldWaiting = 0

    private mutating func queue(_ settlement: Settlement) {
        settlements.pending.append(settlement)
        if settlement.message != nil { settlementsUrgent = true }
    }
    private var reads = Gathering<UInt64>()
    /// Reads of held jobs' targets, ahead of their due time: started only while no read of
    /// jobs due now waits, never tried again (a job whose read ahead failed is read at its
    /// instant).
    private var readsAhead = Gathering<UInt64>()
    /// Since when the pending reads ahead have been gathering.
    private var readsAheadSince: Date?
    /// Whether changes of schedules are heard of (`Event.targetsWatched`).
    private(set) var targetsWatched = false
    /// Bytes of the targets read ahead that held jobs keep (`Settings.readAheadBytes`).
    private(set) var readAheadBytes = 0
    /// Held jobs read ahead or being read, by schedule: those a change of the schedule makes stale.
    private var readAheadBySchedule: [UUID: [UInt64]] = [:]
    /// Jobs whose read ahead is in flight and whose schedule changed meanwhile: what it returns
    /// is not kept.
    private var staleReadsAhead: Set<UInt64> = []
    private var settlements = Gathering<Settlement>()
    /// Jobs held until their due time, soonest first.
    private(set) var held: [(until: Date, tag: UInt64)] = []
    private(set) var receivers: [String: Receiver] = [:]
    /// This worker's shares of the limits admins set, by receiver (`Event.limits`).
    private var fixedLimits: [String: ReceiverLimits] = [:]
    /// The receiver of each schedule's jobs, as last read (schedule id → receiver): a job
    /// for a receiver that could not take it anyway is parked without reading its target.
    private var knownReceivers: [UUID: String] = [:]
    /// What each endpoint's text alone decides (see `facts(of:)`), by the text.
    private(set) var endpoints: [String: EndpointFacts] = [:]
    private(set) var stopping = false
    private var stopDeadline: Date?
    private(set) var finished = false

    init(settings: Settings) {
        self.settings = settings
    }

    /// When the next held job falls due: the loop must send an event (a tick) then.
    var nextHold: Date? { held.first?.until }

    // MARK: Events

    mutating func handle(_ event: Event, now: Date) -> [Action] {
        guard !finished else { return [] }
        var actions: [Action] = []
        switch event {
        case .connected(let generation):
            self.generation = generation
        case .deliveries(let deliveries, let generation):
            guard generation == self.generation else { break }
            if stopping {
                actions.append(.handBack(deliveries.map(\.deliveryTag), generation: generation))
            } else {
                let heldBefore = held.count
                var arrived = 0
                for delivery in deliveries {
                    if JobBatch.isBatch(delivery.body) {
                        arrived += acceptBatch(delivery, now: now, into: &actions)
                    } else {
                        accept(delivery, now: now, into: &actions)
                        arrived += 1
                    }
                }
                // Jobs that were due on arrival, filling the window (held jobs have one of their
                // own): more wait behind them.
                backlogged = held.count - heldBefore < arrived && jobs.count - held.count >= settings.window
            }
        case .lost(let generation):
            guard generation == self.generation else { break }
            drop(into: &actions)
        case .read(let batch, let targets) where readsAhead.inFlight[batch] != nil:
            for tag in readsAhead.inFlight.removeValue(forKey: batch) ?? [] {
                guard staleReadsAhead.remove(tag) == nil, let job = jobs[tag], job.phase == .holding, let id = job.job?.deliveryID,
                    let target = targets[id], target.bodyBytes <= settings.readAheadMaximumBodyBytes,
                    readAheadBytes + Self.bytes(of: target) <= settings.readAheadBytes
                else { continue }
                jobs[tag]?.target = target
                readAheadBytes += Self.bytes(of: target)
            }
        case .readFailed(let batch, _) where readsAhead.inFlight[batch] != nil:
            // Read at their instant instead.
            staleReadsAhead.subtract(readsAhead.inFlight.removeValue(forKey: batch) ?? [])
        case .targetsChanged(let schedules):
            forgetTargets(of: schedules)
        case .targetsWatched(let on):
            targetsWatched = on
            if !on {
                forgetTargets(of: nil)
                forgetReadsAhead()
            }
        case .read(let batch, let targets):
            guard let tags = reads.inFlight.removeValue(forKey: batch) else { break }
            for tag in tags {
                guard let job = jobs[tag], job.phase == .reading else { continue }
                begin(tag: tag, job: job, target: job.job.flatMap { targets[$0.deliveryID] }, now: now, into: &actions)
            }
        case .readFailed(let batch, let reason):
            guard reads.fail(batch: batch, at: now, pause: settings.readRetryDelay) != nil else { break }
            actions.append(.note(.readFailed(reason: reason)))
        case .outcomes(let outcomes):
            for outcome in outcomes { finished(outcome, now: now, into: &actions) }
        case .settled(let batch):
            guard let done = settlements.inFlight.removeValue(forKey: batch) else { break }
            settledUnacked[batch] = done.map(\.tag)
            ackSettled(into: &actions)
        case .settleFailed(let batch, let reason, let published):
            // Its messages went out: publishing them again would send their jobs twice. Those
            // with nothing to record (parked) are done: acked now, not after the records.
            if published, let items = settlements.inFlight[batch] {
                let done = items.filter { $0.attempt == nil }.map(\.tag).filter { jobs.removeValue(forKey: $0) != nil }
                ack(done, into: &actions)
                settlements.inFlight[batch] = items.filter { $0.attempt != nil }.map { item in
                    var item = item
                    item.message = nil
                    return item
                }
            }
            guard settlements.fail(batch: batch, at: now, pause: settings.settleRetryDelay) != nil else { break }
            actions.append(.note(.settleFailed(reason: reason)))
            // Tried again later as a new batch: the batches after it need not wait for it.
            ackSettled(into: &actions)
        case .stop:
            guard !stopping else { break }
            stopping = true
            stopDeadline = now.addingTimeInterval(settings.stopGrace)
            actions.append(.pauseConsuming)
            // What is not POSTed yet goes back at once; POSTs in flight finish.
            let waiting = jobs.filter { [.holding, .waitingToRead, .reading, .waitingForReceiver].contains($0.value.phase) }.keys.sorted()
            held.removeAll()
            let gone = Set(waiting)
            for key in Set(waiting.compactMap { jobs[$0]?.receiver }) { receivers[key]?.forget(gone) }
            heldWaiting = 0
            reads = Gathering()
            forgetReadsAhead()
            let (back, returned) = handBack(waiting)
            for tag in back { jobs[tag] = nil }
            // A batch some of whose jobs went on: the rest go back as messages of one job.
            for key in returned {
                guard let job = jobs[key] else { continue }
                settleWithout(tag: key, job: job, message: Self.returnMessage(job.delivery, job: job.job, now: now))
            }
            let tags = messageTags(of: back)
            if !tags.isEmpty { actions.append(.handBack(tags, generation: generation)) }
            actions.append(.note(.stopping(inFlight: jobs.count - returned.count, handedBack: waiting.count)))
        case .command(let key, let command):
            var receiver = receivers[key] ?? newReceiver(key, now: now)
            if let transition = receiver.apply(command, settings: settings.receivers, now: now) {
                actions.append(.note(.receiver(key, transition)))
            }
            receivers[key] = receiver
            release(key, now: now, into: &actions)
        case .limits(let limits):
            fixedLimits = limits
            for key in receivers.keys {
                receivers[key]?.fix(limits[key] ?? ReceiverLimits(), settings: settings.receivers, now: now)
                release(key, now: now, into: &actions)
            }
        case .tick:
            // Receivers whose requests got slow, or whose rate allows more, start or park
            // what waits for them.
            for key in receivers.keys where receivers[key]?.waiting.isEmpty == false {
                release(key, now: now, into: &actions)
            }
        }
        flush(now: now, into: &actions)
        return actions
    }

    // MARK: Steps

    /// Settles a POST's job and tells its receiver how it went.
    private mutating func finished(_ outcome: HTTPOutcome, now: Date, into actions: inout [Action]) {
        guard let tag = transfers.removeValue(forKey: outcome.id), let job = jobs[tag] else { return }
        settle(tag: tag, job: job, outcome: outcome, now: now, into: &actions)
        guard let key = job.receiver, receivers[key] != nil else { return }
        let retryAfter = outcome.retryAfter.flatMap { RetryPolicy.milliseconds(retryAfter: $0, now: now) }.map { Double($0) / 1000 }
        // A refusal of our own guard says nothing about the receiver.
        let answer =
            outcome.failure == .egressDenied ? .refused : Receiver.Answer(status: outcome.status, timedOut: outcome.failure == .timeout)
        if let transition = receivers[key]?.finished(
            answer, seconds: outcome.seconds, retryAfter: retryAfter, settings: settings.receivers, now: now)
        {
            actions.append(.note(.receiver(key, transition)))
        }
        release(key, now: now, into: &actions)
    }

    /// The attempt a message is for. Headers come from whoever published: clamped before any arithmetic.
    static func attempt(of delivery: AMQPDelivery) -> Int {
        Int(min(max(1, delivery.headers[DeliveryHeaders.attempt]?.intValue ?? 1), Int64(DeliveryLimits.maximumAttempt)))
    }

    private mutating func accept(_ delivery: AMQPDelivery, now: Date, into actions: inout [Action]) {
        let parsed: Result<DeliveryJob, FieldErrorMessage>
        do {
            parsed = .success(try DeliveryJob(body: delivery.body))
        } catch {
            parsed = .failure(error)
        }
        accept(delivery, parsed, now: now, into: &actions)
    }

    /// Takes a batch message's jobs apart (`JobBatch`), each with a key of its own, and returns
    /// how many it held. A message that is not a batch a worker takes is dead-lettered whole. A
    /// batch handed out `splitBatchAfter` times without its outcomes (its workers stopped each
    /// time) goes back as messages of one job: a job that stops every worker taking it is then
    /// dead-lettered alone (`maxRedeliveries`), not with the batch.
    private mutating func acceptBatch(_ delivery: AMQPDelivery, now: Date, into actions: inout [Action]) -> Int {
        let elements: [JobBatch.Element]
        do {
            elements = try JobBatch.elements(of: delivery.body)
        } catch {
            accept(delivery, .failure(error), now: now, into: &actions)
            return 1
        }
        var headers = delivery.headers
        headers[DeliveryHeaders.jobs] = nil
        let redeliveries = headers[DeliveryHeaders.deliveryCount]?.intValue ?? 0
        let split = redeliveries >= Int64(max(1, settings.splitBatchAfter))
        let tag = delivery.deliveryTag
        batches[tag] = (elements.count, elements.count)
        for element in elements {
            let key = Self.batchKeyBit | nextBatchKey
            nextBatchKey += 1
            batchTags[key] = tag
            let job = try? element.job.get()
            let single = AMQPDelivery(
                deliveryTag: key, exchange: delivery.exchange, routingKey: job == nil ? delivery.routingKey : "",
                redelivered: delivery.redelivered, body: element.body, messageID: nil, headers: headers)
            if split, let job {
                jobs[key] = Job(delivery: single, job: job, attempt: Self.attempt(of: single), phase: .settling)
                queue(Settlement(tag: key, message: Self.returnMessage(single, job: job, now: now), attempt: nil))
            } else {
                accept(single, element.job, now: now, into: &actions)
            }
        }
        if split { actions.append(.note(.split(jobs: elements.count, redeliveries: Int(redeliveries)))) }
        return elements.count
    }

    private mutating func accept(
        _ delivery: AMQPDelivery, _ parsed: Result<DeliveryJob, FieldErrorMessage>, now: Date, into actions: inout [Action]
    ) {
        let attempt = Self.attempt(of: delivery)
        let redeliveries = delivery.headers[DeliveryHeaders.deliveryCount]?.intValue ?? 0
        let tag = delivery.deliveryTag
        let job: DeliveryJob
        switch parsed {
        case .success(let parsed):
            job = parsed
        case .failure(let error):
            jobs[tag] = Job(delivery: delivery, job: nil, attempt: attempt, phase: .settling)
            actions.append(.note(.malformed(reason: error.message)))
            queue(
                Settlement(
                    tag: tag, message: deadLetter(delivery, reason: error.message, status: nil, error: nil, attempts: attempt, now: now),
                    attempt: nil))
            return
        }
        if let other = byID[job.deliveryID], other != tag, let first = jobs[other], first.job?.deliveryID == job.deliveryID {
            jobs[tag] = Job(delivery: delivery, job: job, attempt: attempt, phase: .settling)
            if first.phase == .settling {
                // The first copy is decided and waits for its record and ack (PostgreSQL may
                // be away): this copy may be what it was parked or retried as, so it must not
                // be acked for a duplicate. It waits in a park queue and comes back when the
                // first has gone; read then, it is POSTed only if the record says so.
                actions.append(.note(.repeatedWhileSettling(job.deliveryID)))
                queue(Settlement(tag: tag, message: Self.parkMessage(delivery, job: job, delay: settings.shortPark), attempt: nil))
            } else {
                // A second copy of a job this worker holds (a beat published it again after a
                // broker outage, say): both would read the record before either's outcome is
                // recorded, and both would be POSTed. The first goes on; this one is acked.
                actions.append(.note(.repeated(job.deliveryID)))
                queue(Settlement(tag: tag, message: nil, attempt: nil))
            }
            return
        }
        if byID.count > 4 * max(jobs.count, 1024) { byID = byID.filter { jobs[$0.value]?.job?.deliveryID == $0.key } }
        byID[job.deliveryID] = tag
        if redeliveries >= Int64(settings.maxRedeliveries) {
            // Every worker that took it stopped before an outcome: do not let it take the next.
            let reason = "taken \(redeliveries + 1) times without an outcome (a worker stopped while handling it each time)"
            jobs[tag] = Job(delivery: delivery, job: job, attempt: attempt, phase: .settling)
            actions.append(.note(.poison(job.deliveryID, reason: reason)))
            queue(
                Settlement(
                    tag: tag,
                    message: deadLetter(delivery, job: job, reason: reason, status: nil, error: nil, attempts: attempt, now: now),
                    attempt: .init(
                        id: job.deliveryID, state: .dead, attempts: attempt, status: nil, error: reason, latencyMilliseconds: nil)))
            return
        }
        let early = job.scheduledFor.timeIntervalSince(now)
        if job.kind == .schedule, attempt == 1, early > 0.000_5, early <= settings.maximumHold {
            // Published ahead of its time: read its target and POST it when it falls due, so
            // that an edit, a disable or a delete until then counts as it always did.
            jobs[tag] = Job(
                delivery: delivery, job: job, attempt: attempt, phase: .holding, headers: Self.requestHeaders(job, attempt: attempt))
            // Jobs mostly arrive in due order: find the place from the end.
            var index = held.endIndex
            while index > held.startIndex, held[index - 1].until > job.scheduledFor { index -= 1 }
            held.insert((job.scheduledFor, tag), at: index)
            if targetsWatched, readAheadBytes < settings.readAheadBytes, let schedule = job.scheduleID {
                readsAhead.pending.append(tag)
                readAheadBySchedule[schedule, default: []].append(tag)
            }
            return
        }
        admit(tag: tag, job: Job(delivery: delivery, job: job, attempt: attempt, phase: .waitingToRead), now: now, into: &actions)
    }

    /// Queues a job for reading, or parks it at once if its receiver could not take it now.
    private mutating func admit(tag: UInt64, job waiting: Job, now: Date, into actions: inout [Action]) {
        var waiting = waiting
        waiting.phase = .waitingToRead
        // A target read ahead leaves the budget here, whether the job is POSTed or parked.
        let target = waiting.target
        waiting.target = nil
        if let target { readAheadBytes -= Self.bytes(of: target) }
        let delivery = waiting.delivery
        if waiting.job?.kind == .schedule, let schedule = waiting.job?.scheduleID, let key = knownReceivers[schedule],
            let reason = receivers[key]?.wouldPark(now: now, held: waiting.heldUntilDue)
        {
            // Its receiver could not take it now: park it without reading its target.
            waiting.receiver = key
            jobs[tag] = waiting
            receivers[key]?.noteParked(now: now)
            park(tag: tag, job: waiting, reason: reason, now: now, into: &actions)
            return
        }
        if let target {
            // Read while it was held, and its schedule did not change since: no read now.
            waiting.phase = .reading
            jobs[tag] = waiting
            actions.append(.note(.readAhead))
            begin(tag: tag, job: waiting, target: target, now: now, into: &actions)
            return
        }
        jobs[tag] = waiting
        reads.pending.append(tag)
    }

    /// Every read ahead, kept or in flight, forgotten (the jobs left, or the worker stops).
    private mutating func forgetReadsAhead() {
        readsAhead = Gathering()
        readsAheadSince = nil
        readAheadBytes = 0
        readAheadBySchedule.removeAll()
        staleReadsAhead.removeAll()
    }

    /// What a target read ahead takes of `Settings.readAheadBytes`.
    static func bytes(of target: DeliveryStore.Target) -> Int {
        target.body.utf8.count + (target.endpoint?.utf8.count ?? 0) + (target.authToken?.utf8.count ?? 0) + 64
    }

    /// Drops the targets read ahead for these schedules' held jobs (all, for nil): they are
    /// read again at their instant.
    private mutating func forgetTargets(of schedules: [UUID]?) {
        let tags: [UInt64]
        if let schedules {
            tags = schedules.flatMap { readAheadBySchedule.removeValue(forKey: $0) ?? [] }
        } else {
            tags = readAheadBySchedule.values.flatMap { $0 }
            readAheadBySchedule.removeAll()
        }
        let inFlight = Set(readsAhead.inFlight.values.joined())
        for tag in tags {
            if inFlight.contains(tag) { staleReadsAhead.insert(tag) }
            guard let target = jobs[tag]?.target else { continue }
            jobs[tag]?.target = nil
            readAheadBytes -= Self.bytes(of: target)
        }
        let gone = Set(tags)
        readsAhead.pending.removeAll { gone.contains($0) }
    }

    /// Starts the POST, or settles a job that must not be POSTed.
    private mutating func begin(tag: UInt64, job: Job, target: DeliveryStore.Target?, now: Date, into actions: inout [Action]) {
        guard let target, let deliveryJob = job.job else {
            settleWithout(tag: tag, job: job, message: deadLetter(job, reason: "no delivery record for this job", now: now))
            return
        }
        switch target.state {
        case .cancelled, .delivered, .purged, .missed, .skipped, .buffered:
            // Disabled or deleted after it was queued, or a repeat of a delivered job.
            actions.append(.note(.skipped(deliveryJob.deliveryID, state: target.state)))
            settleWithout(tag: tag, job: job, message: nil)
            return
        case .retrying where target.attempts >= job.attempt:
            // This attempt was made and recorded, and its retry is in a delay queue: a copy
            // (its batch came back after a worker stopped, say) must not make it again.
            actions.append(.note(.skipped(deliveryJob.deliveryID, state: target.state)))
            settleWithout(tag: tag, job: job, message: nil)
            return
        case .queued, .retrying, .dead:
            break
        }
        guard let endpoint = target.endpoint else {
            settleWithout(tag: tag, job: job, message: nil)
            return
        }
        let facts = facts(of: endpoint)
        // The row may have been written by hand or before a bound was set: check it again.
        if let problem = facts.problem ?? Self.problem(of: target, maximumPayloadBytes: settings.maximumPayloadBytes) {
            refuse(tag: tag, job: job, reason: problem, now: now, into: &actions)
            return
        }
        let body = Array((target.body.isEmpty || target.body == "null" ? "{}" : target.body).utf8)
        var headers = job.headers ?? Self.requestHeaders(deliveryJob, attempt: job.attempt)
        if let token = target.authToken, !token.isEmpty { headers.append("Authorization: Token \(token)") }
        if let signer = settings.signer {
            headers += signer.headers(id: deliveryJob.deliveryID.lowercasedText, timestamp: Int(now.timeIntervalSince1970), body: body)
        }
        let post: HTTPPost
        do {
            post = try HTTPPost(
                id: nextTransfer, url: endpoint, headers: headers, body: body, timeout: settings.timeout,
                connectTimeout: settings.connectTimeout, guarded: facts.guarded
            ).validated()
        } catch {
            // Nothing a retry could fix: a header value or URL libcurl must not send.
            refuse(tag: tag, job: job, reason: "cannot be sent: \(error)", now: now, into: &actions)
            return
        }
        nextTransfer += 1
        let key = facts.receiver
        jobs[tag]?.receiver = key
        jobs[tag]?.post = post
        // A schedule's jobs go to its endpoint; a webhook call about it goes elsewhere.
        if deliveryJob.kind == .schedule, let schedule = deliveryJob.scheduleID { remember(schedule, key) }
        // In place: a copy would copy its list of waiting jobs for every job admitted.
        let limits = fixedLimits[key] ?? ReceiverLimits()
        let admission = receivers[key, default: Receiver(key: key, settings: settings.receivers, now: now, limits: limits)].admit(
            tag, settings: settings.receivers, now: now, held: job.heldUntilDue)
        switch admission {
        case .start:
            start(tag, now: now, into: &actions)
        case .wait:
            jobs[tag]?.phase = .waitingForReceiver
            if job.heldUntilDue { heldWaiting += 1 }
        case .park(let reason):
            park(tag: tag, job: job, reason: reason, now: now, into: &actions)
        }
    }

    /// A POST's headers that come from its job alone (not from its record or the clock).
    static func requestHeaders(_ job: DeliveryJob, attempt: Int) -> [String] {
        let id = job.deliveryID.lowercasedText
        var headers = [
            "Content-Type: application/json",
            "Idempotency-Key: \(id)",
            "X-Scheduler-Delivery-Id: \(id)",
            "X-Scheduler-Scheduled-For: \(Timestamp.format(job.scheduledFor))",
            "X-Scheduler-Attempt: \(attempt)",
        ]
        if let schedule = job.scheduleID { headers.append("X-Scheduler-Schedule-Id: \(schedule.lowercasedText)") }
        return headers
    }

    /// Sends a job's request (its receiver counted it in already).
    private mutating func start(_ tag: UInt64, now: Date, into actions: inout [Action]) {
        // One lookup, and the job changed in place: a copy of it (its message, headers and
        // request) for each POST would be a share of the instant's work.
        guard let index = jobs.index(forKey: tag), let post = jobs.values[index].post, let deliveryJob = jobs.values[index].job else {
            return
        }
        leavesWaiting(jobs.values[index].phase, heldUntilDue: jobs.values[index].heldUntilDue)
        if jobs.values[index].attempt == 1 && deliveryJob.measuresLateness {
            actions.append(.note(.late(seconds: now.timeIntervalSince(deliveryJob.scheduledFor))))
        }
        transfers[post.id] = tag
        jobs.values[index].phase = .posting(transfer: post.id)
        jobs.values[index].startedAt = now
        actions.append(.post(post))
    }

    /// Acks the jobs of settled batches in the order the batches were started: a batch that
    /// comes back before an earlier one waits for it. Tags acked past one still unacked go one
    /// by one (a frame each, and the broker looks each up in its list of unacked messages: a
    /// burst's 4,941 acked before the 45,006 below them kept RabbitMQ busy for seconds); in
    /// order, the oldest are acked with one `multiple` ack.
    private mutating func ackSettled(into actions: inout [Action]) {
        let earliest = settlements.inFlight.keys.min() ?? .max
        for batch in settledUnacked.keys.sorted() where batch < earliest {
            let tags = (settledUnacked.removeValue(forKey: batch) ?? []).filter { jobs.removeValue(forKey: $0) != nil }
            ack(tags, into: &actions)
        }
    }

    /// Counts a job held until its due time out of its receiver's waiting jobs (it starts or is parked).
    /// Takes the job's phase and mark, not the job: a `Job` passed to a mutating method is
    /// copied (its message, headers and request), and this runs for every POST started.
    private mutating func leavesWaiting(_ phase: Job.Phase, heldUntilDue: Bool) {
        if phase == .waitingForReceiver && heldUntilDue { heldWaiting -= 1 }
    }

    /// Starts what a receiver's freed slots allow, and parks what it can no longer take.
    private mutating func release(_ key: String, now: Date, into actions: inout [Action]) {
        guard let (start, park) = receivers[key]?.release(now: now) else { return }
        for tag in start { self.start(tag, now: now, into: &actions) }
        for (tag, reason) in park {
            if let job = jobs[tag] { self.park(tag: tag, job: job, reason: reason, now: now, into: &actions) }
        }
    }

    /// Gives a job's prefetch slot back: it goes to a park queue, untouched (same attempt,
    /// nothing recorded), and returns to the delivery queue when its delay is over.
    private mutating func park(tag: UInt64, job: Job, reason: Receiver.ParkReason, now: Date, into actions: inout [Action]) {
        if let index = jobs.index(forKey: tag) {
            leavesWaiting(jobs.values[index].phase, heldUntilDue: jobs.values[index].heldUntilDue)
        }
        var delay = settings.shortPark
        // (A job parked just after its read has its receiver in `jobs`, not yet in `job`.)
        if let key = jobs[tag]?.receiver ?? job.receiver, let receiver = receivers[key] {
            switch reason {
            case .open:
                // Back in time for the next probe; a receiver held open by hand has none.
                let left = receiver.heldOpen ? .infinity : (receiver.nextProbe?.timeIntervalSince(now) ?? 0) * 1000
                delay = left >= Double(settings.longPark) ? settings.longPark : settings.shortPark
            case .paused:
                let left = (receiver.pausedUntil?.timeIntervalSince(now) ?? 0) * 1000
                delay = left >= Double(settings.longPark) ? settings.longPark : settings.shortPark
            case .capacity:
                // A backlog that takes longer than the long delay to drain cycles slowly, so
                // that parking costs little; a shorter one comes back in a second, so that a
                // fast receiver given a burst (after an outage, say) is not held up for long.
                // The backlog is what was parked in the last second (short parks come back
                // each second), and what the receiver may keep waiting is what it answers in
                // about a second. That needs a receiver busy for a while to go by: right after
                // an idle spell (an outage, or a batch of held jobs all due at once) it has
                // answered little lately, and a fast receiver's burst would be sent away for
                // the long delay on that alone.
                let drain = Double(receiver.recentParks(now: now, window: 1)) / Double(max(1, receiver.maximumWaiting(now: now)))
                let busy = receiver.busySince.map { now.timeIntervalSince($0) } ?? 0
                delay = drain > Double(settings.longPark) / 1000 && busy >= 2 ? settings.longPark : settings.shortPark
            }
        }
        actions.append(.note(.parked(reason)))
        jobs[tag]?.phase = .settling
        queue(Settlement(tag: tag, message: Self.parkMessage(job.delivery, job: job.job, delay: delay), attempt: nil))
    }

    /// A batch's job as a message of one job, as it is: on the held queue while it is early,
    /// else on the main queue.
    static func returnMessage(_ delivery: AMQPDelivery, job: DeliveryJob?, now: Date) -> AMQPOutgoingMessage {
        let early = job.map { $0.scheduledFor > now } ?? false
        return AMQPOutgoingMessage(
            exchange: early ? DeliveryTopology.heldExchange : DeliveryTopology.exchange, routingKey: routingKey(delivery, job),
            body: body(delivery, job), messageID: messageID(delivery, job), headers: delivery.headers)
    }

    /// A job's message body, routing key and id. A batch's job has none of its own until a
    /// message of one job is made of it (a retry, a park, a dead letter, a return): then they
    /// are its job's, what a message of one job holds.
    static func body(_ delivery: AMQPDelivery, _ job: DeliveryJob?) -> [UInt8] {
        guard delivery.body.isEmpty, let job else { return delivery.body }
        return job.serializedBytes
    }

    static func routingKey(_ delivery: AMQPDelivery, _ job: DeliveryJob?) -> String {
        guard delivery.routingKey.isEmpty, let job else { return delivery.routingKey }
        return job.routingKey
    }

    static func messageID(_ delivery: AMQPDelivery, _ job: DeliveryJob?) -> String? {
        delivery.messageID ?? job?.deliveryID.lowercasedText
    }

    /// Acks jobs that left: a message of one job at once, a batch message with its last job.
    private mutating func ack(_ keys: [UInt64], into actions: inout [Action]) {
        var tags: [UInt64] = []
        tags.reserveCapacity(keys.count)
        for key in keys {
            guard key & Self.batchKeyBit != 0 else {
                tags.append(key)
                continue
            }
            guard let tag = batchTags.removeValue(forKey: key), let batch = batches[tag] else { continue }
            if batch.left > 1 {
                batches[tag] = (batch.size, batch.left - 1)
            } else {
                batches[tag] = nil
                tags.append(tag)
            }
        }
        if !tags.isEmpty { actions.append(.ack(tags, generation: generation)) }
    }

    /// Of these jobs (not started, at a stop): those that go back to the queue with their
    /// message, and those that return as messages of one job (`returnMessage`). A batch goes
    /// back whole only if none of its jobs went on.
    private func handBack(_ keys: [UInt64]) -> (back: [UInt64], returned: [UInt64]) {
        var back: [UInt64] = []
        var byMessage: [UInt64: [UInt64]] = [:]
        for key in keys {
            if let tag = batchTags[key] { byMessage[tag, default: []].append(key) } else { back.append(key) }
        }
        var returned: [UInt64] = []
        for (tag, members) in byMessage {
            if let batch = batches[tag], batch.left == batch.size, members.count == batch.size {
                back += members
            } else {
                returned += members
            }
        }
        return (back, returned)
    }

    /// The delivery tags of the messages these jobs came in, each once; their batches are
    /// forgotten (the messages go back whole).
    private mutating func messageTags(of keys: [UInt64]) -> [UInt64] {
        var tags = Set<UInt64>()
        for key in keys {
            if key & Self.batchKeyBit == 0 {
                tags.insert(key)
            } else if let tag = batchTags.removeValue(forKey: key) {
                tags.insert(tag)
                batches[tag] = nil
            }
        }
        return tags.sorted()
    }

    /// A job's message as it is, for the park queue of `delay` milliseconds.
    private static func parkMessage(_ delivery: AMQPDelivery, job: DeliveryJob?, delay: Int) -> AMQPOutgoingMessage {
        AMQPOutgoingMessage(
            exchange: DeliveryTopology.parkName(milliseconds: delay), routingKey: routingKey(delivery, job), body: body(delivery, job),
            messageID: messageID(delivery, job), headers: delivery.headers)
    }

    private mutating func remember(_ schedule: UUID, _ receiver: String) {
        if knownReceivers.count >= 100_000 { knownReceivers.removeAll(keepingCapacity: true) }
        knownReceivers[schedule] = receiver
    }

    private func newReceiver(_ key: String, now: Date) -> Receiver {
        Receiver(key: key, settings: settings.receivers, now: now, limits: fixedLimits[key] ?? ReceiverLimits())
    }

    /// Forgets receivers with nothing going on for `idle` seconds (tenants choose hosts:
    /// the map must not grow without bound).
    mutating func forgetIdleReceivers(now: Date, idle: Double = 600) {
        receivers = receivers.filter { !$0.value.isIdle || now.timeIntervalSince($0.value.lastActivity) < idle }
    }

    /// What an endpoint's text alone decides about its jobs.
    struct EndpointFacts: Equatable {
        /// Why no job may be POSTed to it (not an http(s) URL, or a literal address the egress
        /// guard refuses), or nil.
        let problem: String?
        /// Whether its connections go through the egress guard (its host is not allowed by name).
        let guarded: Bool
        /// Its receiver (scheme, host and port).
        let receiver: String
    }

    /// Endpoints remembered at most; then the memory starts again (tenants choose endpoints:
    /// with the longest an endpoint may be, a few MB at most).
    static let endpointMemory = 2_000

    /// The facts of an endpoint, worked out once and then remembered: most jobs go to an
    /// endpoint the worker has seen, and its URL's parse and checks cost more than the rest
    /// of a job's preparation.
    mutating func facts(of endpoint: String) -> EndpointFacts {
        if let known = endpoints[endpoint] { return known }
        let facts = Self.facts(of: endpoint, egress: settings.egress)
        // A longer one (a row written by hand) is refused anyway, and not worth its memory.
        guard endpoint.utf8.count <= ScheduleValidation.maximumEndpointLength else { return facts }
        if endpoints.count >= Self.endpointMemory { endpoints.removeAll(keepingCapacity: true) }
        endpoints[endpoint] = facts
        return facts
    }

    static func facts(of endpoint: String, egress: EgressPolicy) -> EndpointFacts {
        // Parsed once: the egress guard, the guard flag and the receiver all need the host.
        let components = URLComponents(string: endpoint)
        let host = components?.host ?? ""
        var problem: String?
        if !ScheduleValidation.isHTTPURL(endpoint) {
            problem = "the endpoint is not an http(s) URL this worker may POST to"
        } else if let refusal = egress.refusal(forHost: host) {
            // A row written before the guard (or by hand): its literal address is judged again.
            problem = "egress-denied: \(refusal)"
        }
        return EndpointFacts(
            problem: problem, guarded: !egress.allows(host: host), receiver: Receiver.key(of: endpoint, components: components))
    }

    /// What makes a stored target's payload or token undeliverable, if anything.
    static func problem(of target: DeliveryStore.Target, maximumPayloadBytes: Int) -> String? {
        if target.bodyBytes > maximumPayloadBytes {
            return "the payload has \(target.bodyBytes) bytes, more than MAX_PAYLOAD_BYTES (\(maximumPayloadBytes))"
        }
        if let token = target.authToken, token.unicodeScalars.contains(where: ScheduleValidation.isControl) {
            return "the auth_token holds control characters, which cannot be sent in a header"
        }
        return nil
    }

    /// Dead-letters a job that must not be POSTed, with the reason, and records it.
    private mutating func refuse(tag: UInt64, job: Job, reason: String, now: Date, into actions: inout [Action]) {
        let id = job.job?.deliveryID ?? UUID()
        actions.append(.note(.refused(id, reason: reason)))
        jobs[tag]?.phase = .settling
        queue(
            Settlement(
                tag: tag, message: deadLetter(job, reason: reason, now: now),
                attempt: job.job.map {
                    .init(id: $0.deliveryID, state: .dead, attempts: job.attempt, status: nil, error: reason, latencyMilliseconds: nil)
                }))
    }

    private mutating func settleWithout(tag: UInt64, job: Job, message: AMQPOutgoingMessage?) {
        jobs[tag]?.phase = .settling
        queue(Settlement(tag: tag, message: message, attempt: nil))
    }

    /// Decides what a POST's outcome means for its job.
    private mutating func settle(tag: UInt64, job: Job, outcome: HTTPOutcome, now: Date, into actions: inout [Action]) {
        guard let deliveryJob = job.job else { return }
        // An address the guard refuses stays refused: no retry.
        let decision =
            outcome.failure == .egressDenied
            ? .dead(reason: outcome.error ?? "egress-denied")
            : settings.policy.decide(
                status: outcome.status, error: outcome.error, attempt: job.attempt, retryAfter: outcome.retryAfter, now: now)
        let latency = outcome.seconds * 1000
        // How late the first POST left (what the console shows); retries are late on purpose.
        let lateness =
            job.attempt == 1 && deliveryJob.measuresLateness
            ? job.startedAt.map { $0.timeIntervalSince(deliveryJob.scheduledFor) * 1000 } : nil
        actions.append(
            .note(
                .attempted(
                    deliveryJob.deliveryID, attempt: job.attempt, decision: decision, status: outcome.status, seconds: outcome.seconds)))
        jobs[tag]?.phase = .settling
        let id = deliveryJob.deliveryID
        switch decision {
        case .delivered:
            queue(
                Settlement(
                    tag: tag, message: nil,
                    attempt: .init(
                        id: id, state: .delivered, attempts: job.attempt, status: outcome.status, error: nil, latencyMilliseconds: latency,
                        latenessMilliseconds: lateness))
            )
        case .retry(let index, _):
            var headers = job.delivery.headers
            headers[DeliveryHeaders.attempt] = .int(Int64(job.attempt + 1))
            let message = AMQPOutgoingMessage(
                exchange: DeliveryTopology.retryName(milliseconds: settings.policy.delays[index]),
                routingKey: Self.routingKey(job.delivery, job.job), body: Self.body(job.delivery, job.job),
                messageID: Self.messageID(job.delivery, job.job), headers: headers)
            queue(
                Settlement(
                    tag: tag, message: message,
                    attempt: .init(
                        id: id, state: .retrying, attempts: job.attempt, status: outcome.status, error: outcome.error,
                        latencyMilliseconds: latency, latenessMilliseconds: lateness)))
        case .dead(let reason):
            queue(
                Settlement(
                    tag: tag,
                    message: deadLetter(
                        job.delivery, job: job.job, reason: reason, status: outcome.status, error: outcome.error,
                        attempts: job.attempt, now: now),
                    attempt: .init(
                        id: id, state: .dead, attempts: job.attempt, status: outcome.status, error: outcome.error ?? reason,
                        latencyMilliseconds: latency, latenessMilliseconds: lateness)))
        }
    }

    private func deadLetter(_ job: Job, reason: String, now: Date) -> AMQPOutgoingMessage {
        deadLetter(job.delivery, job: job.job, reason: reason, status: nil, error: nil, attempts: job.attempt, now: now)
    }

    private func deadLetter(
        _ delivery: AMQPDelivery, job: DeliveryJob? = nil, reason: String, status: Int?, error: String?, attempts: Int, now: Date
    ) -> AMQPOutgoingMessage {
        var headers = delivery.headers
        headers[DeliveryHeaders.reason] = .string(reason)
        headers[DeliveryHeaders.attempts] = .int(Int64(attempts))
        headers[DeliveryHeaders.failedAt] = .string(Timestamp.format(now))
        if let status { headers[DeliveryHeaders.lastStatus] = .int(Int64(status)) }
        if let error { headers[DeliveryHeaders.lastError] = .string(error) }
        return AMQPOutgoingMessage(
            exchange: DeliveryTopology.deadExchange, routingKey: Self.routingKey(delivery, job), body: Self.body(delivery, job),
            messageID: Self.messageID(delivery, job), headers: headers)
    }

    /// The connection is gone, and with it every delivery tag: drop all its work.
    private mutating func drop(into actions: inout [Action]) {
        let posts = transfers.keys.sorted()
        if !posts.isEmpty { actions.append(.cancelPosts(posts)) }
        if !posts.isEmpty || !jobs.isEmpty { actions.append(.note(.abandoned(posts: posts.count, jobs: jobs.count))) }
        transfers.removeAll()
        jobs.removeAll()
        reads = Gathering()
        forgetReadsAhead()
        settlements = Gathering()
        settledUnacked.removeAll()
        batchTags.removeAll()
        batches.removeAll()
        settlementsSince = nil
        settlementsUrgent = false
        backlogged = false
        held.removeAll()
        heldWaiting = 0
        for key in receivers.keys { receivers[key]?.dropConnection() }
    }

    /// Starts the batches that may start, and ends a stop that is done.
    private mutating func flush(now: Date, into actions: inout [Action]) {
        // Held jobs whose time has come (the loop sends a tick at `nextHold`), a batch a turn.
        let due = min(held.firstIndex { $0.until > now } ?? held.endIndex, max(1, settings.heldAdmitBatch))
        if due > 0 {
            let ready = held[..<due].map(\.tag)
            held.removeFirst(due)
            for tag in ready {
                guard var job = jobs[tag], job.phase == .holding else { continue }
                if let schedule = job.job?.scheduleID {
                    readAheadBySchedule[schedule]?.removeAll { $0 == tag }
                    if readAheadBySchedule[schedule]?.isEmpty == true { readAheadBySchedule[schedule] = nil }
                }
                job.heldUntilDue = true
                admit(tag: tag, job: job, now: now, into: &actions)
            }
        }
        reads.retryDue(now)
        if settlements.retryAt.map({ now >= $0 }) ?? false { settlementsUrgent = true }
        settlements.retryDue(now)
        while !reads.pending.isEmpty && reads.inFlight.count < settings.batchesInFlight {
            let first = max(1, settings.firstReadBatch)
            let largest = reads.inFlight.values.lazy.map(\.count).max() ?? 0
            let count = min(reads.pending.count, largest == 0 ? first : max(first, largest.multipliedReportingOverflow(by: 2).partialValue))
            let tags = Array(reads.pending.prefix(count))
            reads.pending.removeFirst(count)
            let batch = nextBatch
            nextBatch += 1
            reads.inFlight[batch] = tags
            for tag in tags { jobs[tag]?.phase = .reading }
            actions.append(.read(batch: batch, ids: tags.compactMap { jobs[$0]?.job?.deliveryID }))
        }
        // Reads ahead only while nothing due now waits to be read: they are not urgent.
        if readsAhead.pending.isEmpty {
            readsAheadSince = nil
        } else if readsAheadSince == nil {
            readsAheadSince = now
        }
        while !readsAhead.pending.isEmpty && reads.pending.isEmpty
            && reads.inFlight.count + readsAhead.inFlight.count < settings.batchesInFlight
            && (readsAhead.pending.count >= settings.readAheadBatch
                || readsAheadSince.map { now.timeIntervalSince($0) >= settings.readAheadGather } ?? true)
        {
            readsAheadSince = nil
            let count = min(readsAhead.pending.count, max(1, settings.readAheadBatch))
            let tags = readsAhead.pending.prefix(count).filter { jobs[$0]?.phase == .holding }
            readsAhead.pending.removeFirst(count)
            guard !tags.isEmpty else { continue }
            let batch = nextBatch
            nextBatch += 1
            readsAhead.inFlight[batch] = tags
            actions.append(.readAhead(batch: batch, ids: tags.compactMap { jobs[$0]?.job?.deliveryID }))
        }
        if settlements.pending.isEmpty {
            settlementsSince = nil
            settlementsUrgent = false
        } else if settlementsSince == nil {
            settlementsSince = now
        }
        let heldDue = heldWaiting > 0 || held.first.map { $0.until <= now } ?? false
        let postsAhead = heldDue || !reads.pending.isEmpty || !reads.inFlight.isEmpty || !transfers.isEmpty
        let delay = heldDue ? settings.burstSettleDelay : settings.settleDelay
        let gathering =
            postsAhead && !stopping && !settlementsUrgent && (heldDue || settlements.pending.count * 10 < jobs.count * 9)
            && (!backlogged || settlements.pending.count * 2 < settings.window)
            && settlementsSince.map { now.timeIntervalSince($0) < delay } ?? false
        if !settlements.pending.isEmpty && settlements.inFlight.count < settings.batchesInFlight && !gathering {
            settlementsSince = nil
            settlementsUrgent = false
            let batch = nextBatch
            nextBatch += 1
            settlements.inFlight[batch] = settlements.pending
            actions.append(.settle(batch: batch, settlements.pending))
            settlements.pending.removeAll()
        }
        if stopping, let stopDeadline, jobs.isEmpty || now >= stopDeadline {
            let left = jobs.keys.sorted()
            let tags = messageTags(of: left)
            if !tags.isEmpty { actions.append(.handBack(tags, generation: generation)) }
            let posts = transfers.keys.sorted()
            if !posts.isEmpty { actions.append(.cancelPosts(posts)) }
            actions.append(.note(.stopped(handedBack: left.count)))
            actions.append(.finish)
            jobs.removeAll()
            transfers.removeAll()
            finished = true
        }
    }
}
