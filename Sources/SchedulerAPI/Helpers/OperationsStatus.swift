import AMQP
import DeliveryQueues
import Foundation
import Logging
import Postgres
import SchedulerCore
import SchedulerStore
import Synchronization

/// What `/api/health/` and `/metrics` say about PostgreSQL, RabbitMQ, the schedules and the
/// queues. Read at most once every `maxAge` seconds, by one refresh at a time, over one
/// long-lived broker connection and one pooled database connection: however many requests
/// come, they cannot open connections or queue up checks. Requests in between are answered
/// from the last reading; a request that finds it stale waits for the next one (a few
/// seconds at most, as every check has a deadline).
final class OperationsStatus: Sendable {
    enum Check: Sendable, Equatable {
        case up
        /// `reason` is what a response may say (no host, user or SQL); `detail` goes to the log.
        case down(reason: String, detail: String)
    }

    struct Reading: Sendable {
        var takenAt: Date
        var database: Check
        var broker: Check
        var schedules: (total: Int, enabled: Int)?
        var queues: QueueDepths.Counts
    }

    private struct State {
        var reading: Reading?
        var refreshing: Task<Reading, Never>?
        /// The long-lived broker connection and its open channel; nil until the next refresh
        /// opens one (after a failure, or when a channel number runs high).
        var session: (session: AMQPSession, channel: UInt16)?
    }

    let pool: PostgresPool
    let brokerURL: String
    let policy: RetryPolicy
    let logger: Logger
    let maxAge: Double
    let checkTimeout: Double
    private let state = Mutex(State())

    init(pool: PostgresPool, brokerURL: String, policy: RetryPolicy, logger: Logger, maxAge: Double = 3, checkTimeout: Double = 5) {
        self.pool = pool
        self.brokerURL = brokerURL
        self.policy = policy
        self.logger = logger
        self.maxAge = maxAge
        self.checkTimeout = checkTimeout
    }

    /// The latest reading, no older than `maxAge` seconds.
    func current() async -> Reading {
        enum Next {
            case ready(Reading)
            case wait(Task<Reading, Never>)
        }
        let next: Next = state.withLock { state in
            if let running = state.refreshing { return .wait(running) }
            if let reading = state.reading, -reading.takenAt.timeIntervalSinceNow < maxAge { return .ready(reading) }
            let running = Task { await self.refresh() }
            state.refreshing = running
            return .wait(running)
        }
        switch next {
        case .ready(let reading): return reading
        case .wait(let refresh): return await refresh.value
        }
    }

    private func refresh() async -> Reading {
        async let database = readDatabase()
        async let broker = readBroker()
        let ((databaseCheck, schedules), (brokerCheck, queues)) = await (database, broker)
        let reading = Reading(takenAt: Date(), database: databaseCheck, broker: brokerCheck, schedules: schedules, queues: queues)
        let previous = state.withLock { state in
            defer {
                state.reading = reading
                state.refreshing = nil
            }
            return state.reading
        }
        // Log changes, not every reading.
        for (name, now, before) in [("database", databaseCheck, previous?.database), ("broker", brokerCheck, previous?.broker)]
        where now != before {
            switch now {
            case .up: if before != nil { logger.notice("\(name) reachable again") }
            case .down(_, let detail): logger.warning("\(name) unreachable", metadata: ["error": "\(detail)"])
            }
        }
        return reading
    }

    private func readDatabase() async -> (Check, (total: Int, enabled: Int)?) {
        let store = ScheduleStore(pool: pool)
        let result = await withDeadline(checkTimeout) { () -> Result<(total: Int, enabled: Int), any Error> in
            do { return .success(try await store.counts()) } catch { return .failure(error) }
        }
        switch result {
        case .none: return (.down(reason: "no answer within \(Int(checkTimeout)) seconds", detail: "timed out"), nil)
        case .some(.failure(let error)): return (.down(reason: "cannot query", detail: "\(error)"), nil)
        case .some(.success(let counts)): return (.up, counts)
        }
    }

    private func readBroker() async -> (Check, QueueDepths.Counts) {
        let (url, policy, timeout) = (brokerURL, self.policy, checkTimeout)
        let held = state.withLock { state in
            defer { state.session = nil }
            return state.session
        }
        // A reading that outlives its deadline is abandoned: the session it uses is closed by
        // whichever side comes second (the reader at the deadline, or the work when it ends),
        // so a slow broker does not leave a connection behind per reading.
        let work = Mutex((session: held?.session, abandoned: false))
        let result = await withDeadline(timeout) { () -> Result<(AMQPSession, QueueDepths.Counts, UInt16), any Error> in
            do {
                let session: AMQPSession
                let channel: UInt16
                if let held {
                    (session, channel) = held
                } else {
                    session = try await AMQPSession.open(url: url, timeout: max(1, timeout - 1))
                    channel = 1
                    let kept = work.withLock { work in
                        if !work.abandoned { work.session = session }
                        return !work.abandoned
                    }
                    guard kept else {
                        await session.close()
                        return .failure(AMQPError(kind: .timeout, message: "abandoned at the reading's deadline"))
                    }
                    try await session.openChannel(channel)
                }
                do {
                    let read = try await QueueDepths.read(on: session, policy: policy, channel: channel)
                    if work.withLock({ $0.abandoned }) { throw AMQPError(kind: .timeout, message: "abandoned at the reading's deadline") }
                    return .success((session, read.counts, read.channel))
                } catch {
                    Task { await session.close() }
                    throw error
                }
            } catch {
                return .failure(error)
            }
        }
        switch result {
        case .none:
            // The session may be stuck in a blocking call: closed here, or by the work when it
            // ends; the next refresh opens another.
            let abandoned = work.withLock { work in
                work.abandoned = true
                return work.session
            }
            if let abandoned { Task { await abandoned.close() } }
            return (.down(reason: "no answer within \(Int(timeout)) seconds", detail: "timed out"), [])
        case .some(.failure(let error)):
            return (.down(reason: "cannot connect", detail: "\(error)"), [])
        case .some(.success(let (session, counts, channel))):
            if channel < 1000 {
                state.withLock { $0.session = (session, channel) }
            } else {
                Task { await session.close() }
            }
            return (.up, counts)
        }
    }

    /// `work`'s answer, or nil when it takes longer than `seconds`; work stuck in a blocking
    /// call is left to finish on its own instead of holding the reading.
    private func withDeadline<T: Sendable>(_ seconds: Double, _ work: @escaping @Sendable () async -> T) async -> T? {
        let (answers, input) = AsyncStream.makeStream(of: T?.self)
        let working = Task { input.yield(await work()) }
        let timer = Task {
            try? await Task.sleep(for: .seconds(seconds))
            input.yield(nil)
        }
        var first = answers.makeAsyncIterator()
        let answer = await first.next() ?? nil
        working.cancel()
        timer.cancel()
        input.finish()
        return answer
    }
}
