import AMQP
import DeliveryQueues
import Foundation
import HTTPClient
import Logging
import Postgres
import SchedulerCore
import SchedulerStore
import Synchronization
import Telemetry

/// The I/O around `DeliveryMachine`, and nothing else: it feeds the machine the events of
/// the consuming connection (`AMQPConsumer`), of the POSTs (`HTTPPoster`), of the database
/// and publisher work it started, and of a clock tick, one at a time, and carries out the
/// actions the machine returns. Both boxes own their threads; this loop is one task.
final class DeliveryLoop: Sendable {
    struct Settings: Sendable {
        let brokerURL: String
        let prefetch: Int
        /// The held queue's prefetch (`WORKER_HELD_WINDOW`).
        let heldWindow: Int
        /// AMQP heartbeat in seconds (0: none): a silent broker is noticed after two.
        var heartbeat: Int = 10
        /// Threads the POSTs are sent on (`WORKER_HTTP_THREADS`).
        var httpThreads: Int = 1
        /// Where to LISTEN for changes of schedules, which make targets read ahead for held
        /// jobs stale (nil: none are read ahead).
        var databaseURL: String? = nil
        var machine: DeliveryMachine.Settings
        /// Told when a receiver's circuit opens or closes.
        var alertURL: String? = nil
        /// Seconds between writes of the receivers' state (and reads of operators' commands).
        var receiverSync: Double = 2
        /// A schedule whose last this many occurrences failed for good is paused (0: never).
        var pauseAfterFailures = 0
        /// Dead letters a tenant may hold before their failing schedules are paused (0: no bound).
        var deadLettersPerTenant = 0
        /// HOOK_AUTH_TOKEN: sent to admins' hooks when the worker tells them of something.
        var hookAuthToken: String? = nil
    }

    private let settings: Settings
    private let store: DeliveryStore
    private let publisher: AMQPPublisher
    private let logger: Logger
    private let receiverStore: ReceiverStore
    private let events: AsyncStream<DeliveryMachine.Event>
    private let input: AsyncStream<DeliveryMachine.Event>.Continuation
    /// The receivers' sync: whether one is running, the newest command it saw, and the
    /// shares of the limits set by hand it last handed the machine.
    private let sync = Mutex<(running: Bool, commandsSince: Date, limits: [String: ReceiverLimits]?)>(
        (false, Date(timeIntervalSince1970: 0), nil))
    /// This worker among the workers alive (`ReceiverStore.workers`). `HOSTNAME` (the pod's name
    /// on Kubernetes), not `ProcessInfo.hostName`, which may wait on a DNS lookup at start-up.
    private let workerID =
        "\(ProcessInfo.processInfo.environment["HOSTNAME"] ?? "worker")-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))"

    init(settings: Settings, pool: PostgresPool, logger: Logger) {
        var settings = settings
        // The machine's window is the consumer's prefetch: one setting, not two to keep equal.
        settings.machine.window = settings.prefetch
        self.settings = settings
        store = DeliveryStore(pool: pool, hookAuthToken: settings.hookAuthToken)
        receiverStore = ReceiverStore(pool: pool, hookAuthToken: settings.hookAuthToken)
        publisher = AMQPPublisher(
            url: settings.brokerURL, topology: DeliveryTopology.make(settings.machine.policy), logger: logger,
            heartbeat: settings.heartbeat)
        self.logger = logger
        (events, input) = AsyncStream.makeStream(of: DeliveryMachine.Event.self)
    }

    /// Takes no new jobs, lets the POSTs in flight finish and hands back the rest; `run`
    /// returns when that is done.
    func stop() {
        input.yield(.stop)
    }

    /// The held queue's prefetch, in messages, for a window of `window` jobs: beat publishes
    /// held jobs up to `DeliveryLimits.jobsPerMessage` to a message (`JobBatch`).
    static func heldPrefetch(window: Int) -> Int {
        let (whole, part) = max(0, window).quotientAndRemainder(dividingBy: DeliveryLimits.jobsPerMessage)
        return max(1, whole + (part > 0 ? 1 : 0))
    }

    /// Listens for changes of schedules (`DeliveryStore.targetsChannel`) and tells the machine:
    /// which schedules changed, and whether it hears of every change (only then are targets
    /// read ahead). A LISTEN may hear nothing without failing (behind a pooler in transaction
    /// mode a notification goes to whichever client holds the server connection then), so what
    /// it hears is checked: a probe of its own is sent (`probe`) at once and every
    /// `probeInterval` seconds; it says it hears once one came back, and fails when one did not
    /// within `probeTimeout`. On failure it says it no longer hears, and tries again.
    static func watchTargets(
        url: String, logger: Logger, probe: @Sendable (UUID) async throws -> Void, probeInterval: Double = 30,
        probeTimeout: Double = 5, _ tell: @Sendable (DeliveryMachine.Event) -> Void
    ) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let listener = try await PostgresListener(
                    url: url, channel: DeliveryStore.targetsChannel, applicationName: "seed-scheduler worker listener", logger: logger)
                defer { listener.stop() }
                var heard = false
                let first = UUID()
                var pending: UUID? = first
                var sent = Date()
                try await probe(first)
                while !Task.isCancelled {
                    let ids = try await listener.notifications(until: Date().addingTimeInterval(0.5)).compactMap(UUID.init(uuidString:))
                    let probed = pending
                    if let probed, ids.contains(probed) {
                        pending = nil
                        if !heard {
                            heard = true
                            failures = 0
                            tell(.targetsWatched(true))
                        }
                    }
                    let changed = ids.filter { $0 != probed }
                    if !changed.isEmpty { tell(.targetsChanged(changed)) }
                    let now = Date()
                    if pending != nil, now.timeIntervalSince(sent) > probeTimeout {
                        throw TargetsWatchError("a notification sent to this listener did not come back within \(probeTimeout) s")
                    }
                    if pending == nil, now.timeIntervalSince(sent) >= probeInterval {
                        let next = UUID()
                        (pending, sent) = (next, now)
                        try await probe(next)
                    }
                }
            } catch {
                tell(.targetsWatched(false))
                failures += 1
                logger.warning(
                    "listening for changes of schedules failed; targets are read at the due time", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(min(30.0, 0.25 * pow(2.0, Double(min(failures, 7))))))
            }
        }
        tell(.targetsWatched(false))
    }

    func run() async throws {
        let input = input
        let logger = logger
        Readiness.shared.expect(["broker", "database"])
        let consumer = AMQPConsumer(
            settings: .init(
                // Jobs due now, and jobs published ahead of their time (held until then), each
                // with a window of its own: held jobs never keep a job due now waiting.
                url: settings.brokerURL,
                queues: [
                    (DeliveryTopology.queue, settings.prefetch),
                    (DeliveryTopology.heldQueue, Self.heldPrefetch(window: settings.heldWindow)),
                ],
                heartbeat: settings.heartbeat, topology: DeliveryTopology.make(settings.machine.policy)),
            logger: logger
        ) { event in
            switch event {
            case .connected(let generation):
                Readiness.shared.ready("broker")
                input.yield(.connected(generation: generation))
            case .deliveries(let deliveries, let generation):
                input.yield(.deliveries(deliveries, generation: generation))
            case .lost(let generation, let error):
                Readiness.shared.failing("broker", "connection lost")
                logger.error("lost the broker connection; unacked jobs return to the queue", metadata: ["error": "\(error)"])
                input.yield(.lost(generation: generation))
            }
        }
        let egress = settings.machine.egress
        let poster = try HTTPPoster(
            maximumResponseBytes: DeliveryLimits.maximumResponseBytes,
            egress: { bytes in IPAddress(bytes: bytes).flatMap { egress.refusal(for: $0) } }, threads: settings.httpThreads
        ) { outcomes in
            input.yield(.outcomes(outcomes))
        }
        // The connections the reads will use, opened and warm before the first due time.
        let warming = Task { [store] in await store.warmReads() }
        defer { warming.cancel() }
        consumer.start()
        poster.start()
        logger.info(
            "consuming",
            metadata: [
                "queues": "\(DeliveryTopology.queue), \(DeliveryTopology.heldQueue)",
                "prefetch": "\(settings.prefetch), \(settings.heldWindow)",
            ])
        let clock = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                input.yield(.tick)
            }
        }
        let watch = Task { [settings, logger] in
            guard let url = settings.databaseURL, settings.machine.readAheadBytes > 0 else { return }
            await Self.watchTargets(url: url, logger: logger, probe: { [store] in try await store.notifyTargets($0) }) { input.yield($0) }
        }
        defer { watch.cancel() }
        var machine = DeliveryMachine(settings: settings.machine)
        var lastSync = Date.distantPast
        // A tick at the next held job's due time, and a warm-up just before (`HoldTimers`).
        var timers = HoldTimers()
        var alarm: Task<Void, Never>?
        defer { alarm?.cancel() }
        var prewarm: Task<Void, Never>?
        defer { prewarm?.cancel() }
        for await event in events {
            let now = Date()
            if now.timeIntervalSince(lastSync) >= settings.receiverSync {
                lastSync = now
                machine.forgetIdleReceivers(now: now)
                syncReceivers(machine.receivers, now: now)
            }
            var posts: [HTTPPost] = []
            var finished = false
            for action in machine.handle(event, now: now) {
                switch action {
                case .read(let batch, let ids):
                    read(batch: batch, ids: ids, maximumBodyBytes: settings.machine.maximumPayloadBytes)
                case .readAhead(let batch, let ids):
                    read(batch: batch, ids: ids, maximumBodyBytes: settings.machine.readAheadMaximumBodyBytes)
                case .post(let post):
                    posts.append(post)
                case .settle(let batch, let settlements):
                    settle(batch: batch, settlements)
                case .ack(let tags, let generation):
                    consumer.ack(tags, generation: generation)
                case .handBack(let tags, let generation):
                    consumer.nack(tags, requeue: true, generation: generation)
                case .cancelPosts(let ids):
                    poster.cancel(ids)
                case .pauseConsuming:
                    consumer.pause()
                case .finish:
                    finished = true
                case .note(let note):
                    record(note)
                }
            }
            // One handover (and one wakeup of libcurl's thread) for all of this event's POSTs.
            for (post, error) in poster.post(posts) {
                input.yield(.posted(HTTPOutcome(id: post.id, status: nil, failure: .other, error: "\(error)", retryAfter: nil, seconds: 0)))
            }
            if finished { break }
            // The time now, not the event's: the alarm counts from when it is set.
            for action in timers.plan(nextHold: machine.nextHold, now: Date()) {
                switch action {
                case .alarm(_, let delay):
                    alarm?.cancel()
                    alarm = Task {
                        try? await Task.sleep(for: .seconds(delay), tolerance: .zero)
                        if !Task.isCancelled { input.yield(.tick) }
                    }
                case .warm(_, let delay):
                    prewarm?.cancel()
                    prewarm = Task { [store] in
                        try? await Task.sleep(for: .seconds(delay), tolerance: .zero)
                        if !Task.isCancelled { await store.warmReads() }
                    }
                }
            }
        }
        clock.cancel()
        await consumer.close()
        await poster.close()
        publisher.close()
        // The others' shares of the limits set by hand grow at their next sync.
        try? await receiverStore.workerStopped(workerID)
    }

    /// Writes the receivers' state, counts them by state, and reads operators' commands
    /// (they come back as events); skipped while the previous sync still runs.
    private func syncReceivers(_ receivers: [String: Receiver], now: Date) {
        let window = Double(settings.machine.longPark) / 1000
        var counts = Dictionary(uniqueKeysWithValues: Receiver.Breaker.allCases.map { ($0, 0) })
        var waiting = 0
        let reports = receivers.values.map { receiver in
            let state: Receiver.Breaker = receiver.heldOpen ? .open : receiver.breaker
            counts[state, default: 0] += 1
            let jobs = receiver.waitingCount(now: now, window: window)
            waiting += jobs
            return ReceiverStore.Report(
                receiver: receiver.key, state: state.rawValue, concurrency: receiver.limit, inFlight: receiver.inFlight,
                waiting: jobs, successRate: receiver.successRate, latencyMilliseconds: receiver.latency.map { $0 * 1000 },
                pausedUntil: receiver.pausedUntil, heldOpen: receiver.heldOpen, changedAt: receiver.changedAt)
        }
        ReceiverMetrics.record(states: counts, waiting: waiting)
        guard
            sync.withLock({ state in
                defer { state.running = true }
                return !state.running
            })
        else { return }
        let (store, input, logger, workerID) = (receiverStore, input, logger, workerID)
        Task { [self] in
            defer { sync.withLock { $0.running = false } }
            do {
                // Every sync is a write: `/readyz` learns of PostgreSQL from it when idle.
                try await store.write(reports)
                Readiness.shared.ready("database")
                let since = sync.withLock { $0.commandsSince }
                for command in try await store.commands(since: since) {
                    sync.withLock { $0.commandsSince = max($0.commandsSince, command.at) }
                    guard let kind = Receiver.Command(rawValue: command.command) else { continue }
                    input.yield(.command(receiver: command.receiver, kind))
                }
                // Limits set by hand, shared among the workers alive.
                let workers = try await store.workers(alive: workerID)
                let shares = workers.limits.mapValues { $0.share(workers: workers.count, rank: workers.rank) }
                if sync.withLock({ state in
                    defer { state.limits = shares }
                    return state.limits != shares
                }) {
                    input.yield(.limits(shares))
                }
            } catch {
                Readiness.shared.failing("database", "unreachable")
                logger.warning("cannot sync the receivers' state and commands", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Logs and counts a receiver's change, and tells the operator's webhook if there is one.
    private func announce(_ key: String, _ transition: Receiver.Transition) {
        let metadata: Logger.Metadata = [
            "receiver": "\(key)", "from": "\(transition.from.rawValue)", "to": "\(transition.to.rawValue)",
            "reason": "\(transition.reason)",
        ]
        if transition.to == .open {
            logger.warning("receiver circuit opened: its jobs wait instead of using attempts", metadata: metadata)
        } else {
            logger.info("receiver circuit \(transition.to.rawValue)", metadata: metadata)
        }
        ReceiverMetrics.transition(to: transition.to)
        // The operator hears of an opening and a closing, not of every failed probe between.
        let news = (transition.from == .closed && transition.to == .open) || transition.to == .closed
        guard news else { return }
        let opened = transition.to != .closed
        let data = JSONValue.object([
            "receiver": .string(key), "from": .string(transition.from.rawValue), "to": .string(transition.to.rawValue),
            "reason": .string(transition.reason), "at": .string(Timestamp.format(Date())),
        ])
        let (logger, receiverStore) = (logger, receiverStore)
        // The admins' `receiver.*` hooks: told once, by the first worker to see the change.
        Task {
            do {
                try await receiverStore.announce(receiver: key, opened: opened, data: data)
            } catch {
                logger.warning("cannot tell the hooks of a receiver's circuit", metadata: ["error": "\(error)"])
            }
        }
        guard let url = settings.alertURL, case .object(var object) = data else { return }
        object["event"] = .string(opened ? "receiver.opened" : "receiver.closed")
        let body = JSONValue.object(object).serializedBytes
        Task {
            do {
                let status = try await SimplePost.send(url: url, headers: ["Content-Type: application/json"], body: body, timeout: 10)
                if !(200..<300).contains(status) {
                    logger.warning("RECEIVER_ALERT_URL answered \(status)")
                }
            } catch {
                logger.warning("cannot reach RECEIVER_ALERT_URL", metadata: ["error": "\(error)"])
            }
        }
    }

    private func read(batch: Int, ids: [UUID], maximumBodyBytes: Int) {
        let (store, input) = (store, input)
        Task {
            do {
                input.yield(.read(batch: batch, try await store.targets(ids, maximumBodyBytes: maximumBodyBytes)))
            } catch {
                input.yield(.readFailed(batch: batch, reason: "\(error)"))
            }
        }
    }

    /// Publishes what must be published, then records what must be recorded. A failed
    /// record after the publish is reported as such: the retry only records.
    private func settle(batch: Int, _ settlements: [DeliveryMachine.Settlement]) {
        let (store, publisher, input) = (store, publisher, input)
        Task {
            do {
                try await publisher.publish(settlements.compactMap(\.message))
            } catch {
                input.yield(.settleFailed(batch: batch, reason: "\(error)"))
                return
            }
            let attempts = settlements.compactMap(\.attempt)
            do {
                try await store.record(attempts)
                input.yield(.settled(batch: batch))
            } catch {
                input.yield(.settleFailed(batch: batch, reason: "\(error)", published: true))
                return
            }
            await pauseFailing(dead: attempts.filter { $0.state == .dead }.map(\.id))
        }
    }

    /// After dead letters were recorded: pauses the schedules that keep failing, or whose
    /// owner's dead letters reached their bound. A failure here is logged; the next dead
    /// letter of the schedule looks again.
    private func pauseFailing(dead: [UUID]) async {
        guard !dead.isEmpty, settings.pauseAfterFailures > 0 || settings.deadLettersPerTenant > 0 else { return }
        do {
            for paused in try await store.pauseFailing(
                deadIDs: dead, afterFailures: settings.pauseAfterFailures, tenantDeadLetters: settings.deadLettersPerTenant)
            {
                logger.warning(
                    "schedule paused: its failures would pile up",
                    metadata: ["schedule.id": "\(paused.scheduleID.lowercasedText)", "reason": "\(paused.reason)"])
                DeliveryMetrics.paused(paused.why.rawValue)
            }
        } catch {
            logger.error("could not check failing schedules", metadata: ["error": "\(error)"])
        }
    }

    private func record(_ note: DeliveryMachine.Note) {
        switch note {
        case .poison(let id, let reason):
            logger.error("poison job dead-lettered", metadata: ["delivery.id": "\(id.lowercasedText)", "reason": "\(reason)"])
            DeliveryMetrics.skipped("poison")
        case .malformed(let reason):
            logger.warning("malformed job dead-lettered", metadata: ["reason": "\(reason)"])
            DeliveryMetrics.skipped("malformed")
        case .refused(let id, let reason):
            logger.warning("delivery refused", metadata: ["delivery.id": "\(id.lowercasedText)", "reason": "\(reason)"])
            DeliveryMetrics.skipped("refused")
        case .repeated(let id):
            logger.info("a second copy of a job this worker holds: acked without a POST", metadata: ["delivery.id": "\(id.lowercasedText)"])
            DeliveryMetrics.skipped("duplicate")
        case .repeatedWhileSettling(let id):
            logger.info(
                "a second copy of a job whose outcome is being recorded: parked until it is",
                metadata: ["delivery.id": "\(id.lowercasedText)"])
        case .skipped(let id, let state):
            logger.debug("job not delivered", metadata: ["delivery.id": "\(id.lowercasedText)", "state": "\(state)"])
            DeliveryMetrics.skipped(state == .delivered || state == .retrying ? "duplicate" : "cancelled")
        case .attempted(let id, let attempt, let decision, let status, let seconds):
            DeliveryMetrics.attempt(decision: decision, status: status, seconds: seconds)
            switch decision {
            case .delivered:
                break
            case .retry(_, let reason):
                logger.info(
                    "delivery failed; will retry",
                    metadata: ["delivery.id": "\(id.lowercasedText)", "reason": "\(reason)", "attempt": "\(attempt)"])
            case .dead(let reason):
                logger.warning("delivery failed for good", metadata: ["delivery.id": "\(id.lowercasedText)", "reason": "\(reason)"])
            }
        case .late(let seconds):
            DeliveryMetrics.lateness.record(seconds)
        case .readAhead:
            DeliveryMetrics.readAhead.increment()
        case .readFailed(let reason):
            logger.error("cannot read delivery records; will try again", metadata: ["error": "\(reason)"])
        case .settleFailed(let reason):
            logger.error("cannot record outcomes or publish retries; will try again", metadata: ["error": "\(reason)"])
        case .abandoned(let posts, let jobs):
            logger.info(
                "abandoned the jobs of a lost connection; they return to the queue", metadata: ["posts": "\(posts)", "jobs": "\(jobs)"])
        case .stopping(let inFlight, let handedBack):
            logger.info("stopping: finishing deliveries in flight", metadata: ["in.flight": "\(inFlight)", "handed.back": "\(handedBack)"])
        case .stopped(let handedBack):
            logger.info("stopped", metadata: ["handed.back": "\(handedBack)"])
        case .split(let jobs, let redeliveries):
            logger.warning(
                "a batch handed out again and again without its outcomes: its jobs go back one to a message",
                metadata: ["jobs": "\(jobs)", "redeliveries": "\(redeliveries)"])
        case .parked(let reason):
            ReceiverMetrics.parked(reason)
        case .receiver(let key, let transition):
            announce(key, transition)
        }
    }
}

struct TargetsWatchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
