import AMQP
import DeliveryQueues
import Foundation
import HTTPClient
import SchedulerCore
import SchedulerStore
import Testing

@testable import Worker

/// Every transition of the worker's state machine, without a broker or a database.
@Suite struct DeliveryMachineTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)
    static let policy = RetryPolicy(maxAttempts: 3, delays: [5_000, 30_000])

    var machine = DeliveryMachine(settings: .init(policy: policy, timeout: 30, connectTimeout: 10, batchesInFlight: 1))
    var now = start

    // MARK: Helpers

    static func job(_ id: UUID = UUID(), scheduledFor: Date = start) -> DeliveryJob {
        DeliveryJob(deliveryID: id, scheduleID: UUID(), scheduledFor: scheduledFor, kind: .schedule)
    }

    static func delivery(
        tag: UInt64, job: DeliveryJob, attempt: Int64? = nil, redeliveries: Int64? = nil, body: [UInt8]? = nil
    ) -> AMQPDelivery {
        var headers: [String: AMQPValue] = [:]
        if let attempt { headers[DeliveryHeaders.attempt] = .int(attempt) }
        if let redeliveries { headers[DeliveryHeaders.deliveryCount] = .int(redeliveries) }
        return AMQPDelivery(
            deliveryTag: tag, exchange: DeliveryTopology.exchange, routingKey: job.routingKey, redelivered: false,
            body: body ?? job.json.serializedBytes, messageID: job.deliveryID.uuidString.lowercased(), headers: headers)
    }

    static func target(
        endpoint: String? = "http://receiver.example/hook", state: Delivery.State = .queued, body: String = #"{"a":1}"#,
        token: String? = "secret"
    ) -> DeliveryStore.Target {
        DeliveryStore.Target(state: state, attempts: 0, endpoint: endpoint, body: body, bodyBytes: body.utf8.count, authToken: token)
    }

    static func outcome(_ id: UInt64, status: Int?, error: String? = nil, retryAfter: String? = nil) -> HTTPOutcome {
        HTTPOutcome(
            id: id, status: status, failure: status == nil ? .connection : nil, error: error, retryAfter: retryAfter, seconds: 0.25)
    }

    mutating func send(_ event: DeliveryMachine.Event, after seconds: Double = 0) -> [DeliveryMachine.Action] {
        now = now.addingTimeInterval(seconds)
        return machine.handle(event, now: now)
    }

    /// Connects, receives the job and answers its read with `target`; returns the POST.
    mutating func posted(
        tag: UInt64 = 1, job: DeliveryJob, target: DeliveryStore.Target = target(), attempt: Int64? = nil
    ) throws -> HTTPPost {
        if machine.generation == 0 { _ = send(.connected(generation: 1)) }
        let read = try #require(
            send(.received(Self.delivery(tag: tag, job: job, attempt: attempt), generation: machine.generation)).reads.first)
        #expect(read.ids == [job.deliveryID])
        return try #require(send(.read(batch: read.batch, [job.deliveryID: target])).posts.first)
    }

    // MARK: The happy path

    @Test mutating func aJobIsReadPostedSettledAndOnlyThenAcked() throws {
        let job = Self.job()
        let post = try posted(tag: 7, job: job)
        #expect(post.url == "http://receiver.example/hook")
        #expect(String(decoding: post.body, as: UTF8.self) == #"{"a":1}"#)
        let id = job.deliveryID.uuidString.lowercased()
        #expect(post.headers.contains("Idempotency-Key: \(id)"))
        #expect(post.headers.contains("X-Scheduler-Attempt: 1"))
        #expect(post.headers.contains("Authorization: Token secret"))
        #expect(post.timeout == 30 && post.connectTimeout == 10)
        #expect(machine.jobs[7]?.phase == .posting(transfer: post.id))

        let settle = try #require(send(.posted(Self.outcome(post.id, status: 204))).settles.first)
        #expect(settle.items.count == 1)
        #expect(settle.items[0].message == nil)
        #expect(settle.items[0].attempt?.state == .delivered)
        #expect(settle.items[0].attempt?.status == 204)
        #expect(machine.jobs[7]?.phase == .settling)

        let acks = send(.settled(batch: settle.batch)).acks
        #expect(acks.count == 1 && acks[0].tags == [7] && acks[0].generation == 1)
        #expect(machine.jobs.isEmpty && machine.transfers.isEmpty)
    }

    @Test mutating func theFirstAttemptNotesItsLatenessAndRetriesDoNot() throws {
        let scheduled = Self.start.addingTimeInterval(-3)
        _ = send(.connected(generation: 1))
        let job = Self.job(scheduledFor: scheduled)
        let read = try #require(send(.received(Self.delivery(tag: 1, job: job), generation: 1)).reads.first)
        let actions = send(.read(batch: read.batch, [job.deliveryID: Self.target()]))
        #expect(actions.notes.contains(.late(seconds: 3)))

        let retry = Self.job(scheduledFor: scheduled)
        let again = try #require(send(.received(Self.delivery(tag: 2, job: retry, attempt: 2), generation: 1)).reads.first)
        let retried = send(.read(batch: again.batch, [retry.deliveryID: Self.target()]))
        #expect(retried.posts.first?.headers.contains("X-Scheduler-Attempt: 2") == true)
        #expect(!retried.notes.contains { if case .late = $0 { true } else { false } })
    }

    @Test mutating func aSignerAddsStandardWebhooksHeaders() throws {
        machine = DeliveryMachine(
            settings: .init(policy: Self.policy, timeout: 30, signer: WebhookSigner(secret: "s"), batchesInFlight: 1))
        let post = try posted(job: Self.job())
        #expect(post.headers.contains("webhook-timestamp: \(Int(Self.start.timeIntervalSince1970))"))
        #expect(post.headers.contains { $0.hasPrefix("webhook-signature: v1,") })
    }

    @Test mutating func anEmptyOrNullPayloadIsPostedAsAnEmptyObject() throws {
        let post = try posted(job: Self.job(), target: Self.target(body: "null"))
        #expect(post.body == Array("{}".utf8))
    }

    // MARK: Failures of the receiver

    @Test mutating func aFailedAttemptIsRetriedThroughItsDelayQueueWithTheNextAttemptNumber() throws {
        let job = Self.job()
        let post = try posted(job: job)
        let settle = try #require(send(.posted(Self.outcome(post.id, status: 500))).settles.first)
        let message = try #require(settle.items[0].message)
        #expect(message.exchange == DeliveryTopology.retryName(milliseconds: 5_000))
        #expect(message.headers[DeliveryHeaders.attempt] == .int(2))
        #expect(message.routingKey == job.routingKey)
        #expect(settle.items[0].attempt?.state == .retrying)
        #expect(send(.settled(batch: settle.batch)).acks.first?.tags == [1])
    }

    @Test mutating func theLastFailedAttemptIsDeadLetteredWithItsReason() throws {
        let post = try posted(job: Self.job(), attempt: 3)
        let actions = send(.posted(Self.outcome(post.id, status: nil, error: "Connection refused")))
        let settle = try #require(actions.settles.first)
        let message = try #require(settle.items[0].message)
        #expect(message.exchange == DeliveryTopology.deadExchange)
        #expect(message.headers[DeliveryHeaders.attempts] == .int(3))
        #expect(message.headers[DeliveryHeaders.lastError] == .string("Connection refused"))
        #expect(message.headers[DeliveryHeaders.failedAt] == .string(Timestamp.format(now)))
        #expect(settle.items[0].attempt?.state == .dead)
        #expect(actions.notes.contains { if case .attempted(_, 3, .dead, nil, _) = $0 { true } else { false } })
    }

    // MARK: Jobs that are not POSTed

    @Test mutating func aMalformedMessageIsDeadLetteredWithoutARecord() throws {
        _ = send(.connected(generation: 1))
        let job = Self.job()
        let actions = send(.received(Self.delivery(tag: 3, job: job, body: Array("not json".utf8)), generation: 1))
        #expect(actions.reads.isEmpty)
        let settle = try #require(actions.settles.first)
        #expect(settle.items[0].message?.exchange == DeliveryTopology.deadExchange)
        #expect(settle.items[0].attempt == nil)
        #expect(actions.notes.contains { if case .malformed = $0 { true } else { false } })
        #expect(send(.settled(batch: settle.batch)).acks.first?.tags == [3])
    }

    @Test mutating func aJobRedeliveredTooOftenIsPoison() throws {
        _ = send(.connected(generation: 1))
        let job = Self.job()
        let actions = send(.received(Self.delivery(tag: 1, job: job, redeliveries: 5), generation: 1))
        #expect(actions.reads.isEmpty)
        let settle = try #require(actions.settles.first)
        #expect(settle.items[0].message?.exchange == DeliveryTopology.deadExchange)
        #expect(settle.items[0].attempt?.state == .dead)
        #expect(actions.notes.contains { if case .poison(job.deliveryID, _) = $0 { true } else { false } })
        // One redelivery fewer is read as usual.
        #expect(!send(.received(Self.delivery(tag: 2, job: Self.job(), redeliveries: 4), generation: 1)).reads.isEmpty)
    }

    @Test(arguments: [Int64.min, -1, 0, Int64.max])
    mutating func hostileAttemptHeadersAreClamped(_ attempt: Int64) throws {
        let post = try posted(job: Self.job(), attempt: attempt)
        let expected = attempt < 1 ? 1 : DeliveryLimits.maximumAttempt
        #expect(post.headers.contains("X-Scheduler-Attempt: \(expected)"))
    }

    @Test mutating func aJobWithoutARecordIsDeadLettered() throws {
        _ = send(.connected(generation: 1))
        let read = try #require(send(.received(Self.delivery(tag: 1, job: Self.job()), generation: 1)).reads.first)
        let settle = try #require(send(.read(batch: read.batch, [:])).settles.first)
        #expect(settle.items[0].message?.headers[DeliveryHeaders.reason] == .string("no delivery record for this job"))
    }

    @Test(arguments: [Delivery.State.cancelled, .delivered, .purged])
    mutating func aCancelledOrDeliveredJobIsAckedWithoutAPost(_ state: Delivery.State) throws {
        _ = send(.connected(generation: 1))
        let job = Self.job()
        let read = try #require(send(.received(Self.delivery(tag: 1, job: job), generation: 1)).reads.first)
        let actions = send(.read(batch: read.batch, [job.deliveryID: Self.target(state: state)]))
        #expect(actions.posts.isEmpty)
        #expect(actions.notes.contains(.skipped(job.deliveryID, state: state)))
        let settle = try #require(actions.settles.first)
        #expect(settle.items[0].message == nil && settle.items[0].attempt == nil)
        #expect(send(.settled(batch: settle.batch)).acks.first?.tags == [1])
    }

    @Test(arguments: [
        (target(endpoint: "file:///etc/passwd"), "not an http(s) URL"),
        (target(token: "a\r\nX-Injected: 1"), "control characters"),
        (target(body: String(repeating: "x", count: 300_000)), "MAX_PAYLOAD_BYTES"),
        (target(endpoint: "http://receiver.example/a b"), "not an http(s) URL"),
    ])
    mutating func aStoredTargetThatMustNotBeSentIsRefused(_ target: DeliveryStore.Target, _ reason: String) throws {
        _ = send(.connected(generation: 1))
        let job = Self.job()
        let read = try #require(send(.received(Self.delivery(tag: 1, job: job), generation: 1)).reads.first)
        let actions = send(.read(batch: read.batch, [job.deliveryID: target]))
        #expect(actions.posts.isEmpty)
        let settle = try #require(actions.settles.first)
        let stated = settle.items[0].message?.headers[DeliveryHeaders.reason]?.stringValue ?? ""
        #expect(stated.contains(reason), "\(stated)")
        #expect(settle.items[0].attempt?.state == .dead)
    }

    // MARK: Batches and failures of the database or the broker

    @Test mutating func readsGatherIntoTheNextBatchWhileOneIsInFlight() throws {
        _ = send(.connected(generation: 1))
        let jobs = (1...4).map { _ in Self.job() }
        let first = try #require(send(.received(Self.delivery(tag: 1, job: jobs[0]), generation: 1)).reads.first)
        #expect(send(.received(Self.delivery(tag: 2, job: jobs[1]), generation: 1)).reads.isEmpty)
        #expect(send(.received(Self.delivery(tag: 3, job: jobs[2]), generation: 1)).reads.isEmpty)
        let actions = send(.read(batch: first.batch, [jobs[0].deliveryID: Self.target()]))
        #expect(actions.posts.count == 1)
        #expect(actions.reads.first?.ids == [jobs[1].deliveryID, jobs[2].deliveryID])
    }

    @Test mutating func aFirstAttemptRecordsHowLateItsPostLeftAndARetryDoesNot() throws {
        _ = send(.connected(generation: 1))
        let job = Self.job()
        let read = try #require(send(.received(Self.delivery(tag: 1, job: job), generation: 1), after: 0.2).reads.first)
        let post = try #require(send(.read(batch: read.batch, [job.deliveryID: Self.target()]), after: 0.05).posts.first)
        let settle = try #require(send(.posted(Self.outcome(post.id, status: 500)), after: 0.3).settles.first)
        let first = try #require(settle.items.first?.attempt)
        #expect(abs(try #require(first.latenessMilliseconds) - 250) < 0.001, "due at start, POSTed 250 ms later")
        _ = send(.settled(batch: settle.batch))
        // Its retry (attempt 2) is late on purpose: no lateness.
        let retry = try #require(send(.received(Self.delivery(tag: 2, job: job, attempt: 2), generation: 1), after: 5).reads.first)
        let again = try #require(send(.read(batch: retry.batch, [job.deliveryID: Self.target()])).posts.first)
        let second = try #require(send(.posted(Self.outcome(again.id, status: 200))).settles.first?.items.first?.attempt)
        #expect(second.latenessMilliseconds == nil && second.state == .delivered)
    }

    @Test mutating func aCopyArrivingWhileTheFirstIsBeingRecordedIsParkedNotAcked() throws {
        _ = send(.connected(generation: 1))
        let job = Self.job()
        let read = try #require(send(.received(Self.delivery(tag: 1, job: job), generation: 1)).reads.first)
        let post = try #require(send(.read(batch: read.batch, [job.deliveryID: Self.target()])).posts.first)
        let first = try #require(send(.posted(Self.outcome(post.id, status: 200))).settles.first)
        // PostgreSQL is slow or away: the first's record is still out when a copy arrives (the
        // first's own park or retry message coming back, or a beat's second publish). Acked
        // for a duplicate, a parked job would be lost.
        let copy = send(.received(Self.delivery(tag: 2, job: job), generation: 1))
        #expect(copy.notes.contains(.repeatedWhileSettling(job.deliveryID)))
        #expect(!copy.notes.contains(.repeated(job.deliveryID)))
        #expect(copy.acks.isEmpty && copy.posts.isEmpty && copy.reads.isEmpty)
        let afterFirst = send(.settled(batch: first.batch))
        #expect(afterFirst.acks.flatMap(\.tags) == [1])
        let parked = try #require(afterFirst.settles.first)
        #expect(parked.items.map(\.tag) == [2] && parked.items[0].attempt == nil)
        #expect(parked.items[0].message?.exchange == DeliveryTopology.parkName(milliseconds: DeliveryTopology.parkDelays[0]))
        // Its park message was confirmed and the batch failed after it: with nothing to
        // record it is done, and acked now rather than after the retried records.
        let failed = send(.settleFailed(batch: parked.batch, reason: "database away", published: true))
        #expect(failed.acks.flatMap(\.tags) == [2])
        #expect(machine.jobs.isEmpty)
        // Back from the park queue, with the first gone: read again (its record decides).
        let back = send(.received(Self.delivery(tag: 3, job: job), generation: 1))
        #expect(back.reads.first?.ids == [job.deliveryID])
    }

    @Test mutating func aSecondCopyOfAJobTheWorkerHoldsIsAckedWithoutAPost() throws {
        _ = send(.connected(generation: 1))
        let job = Self.job()
        let read = try #require(send(.received(Self.delivery(tag: 1, job: job), generation: 1)).reads.first)
        let post = try #require(send(.read(batch: read.batch, [job.deliveryID: Self.target()])).posts.first)
        // A beat published it again (after a broker outage): the copy arrives while the first is out.
        let copy = send(.received(Self.delivery(tag: 2, job: job), generation: 1))
        #expect(copy.reads.isEmpty && copy.posts.isEmpty)
        #expect(copy.notes.contains(.repeated(job.deliveryID)))
        // (Its ack gathers with other outcomes while the first's POST is out.)
        let settled = try #require(send(.tick, after: 0.11).settles.first)
        #expect(settled.items.map(\.tag) == [2] && settled.items[0].attempt == nil && settled.items[0].message == nil)
        #expect(send(.settled(batch: settled.batch)).acks.flatMap(\.tags) == [2])
        // The first goes on and is recorded; once it has left, a later copy is read again
        // (and skipped by its record's state).
        let first = try #require(send(.posted(Self.outcome(post.id, status: 200))).settles.first)
        #expect(first.items.first?.attempt?.state == .delivered)
        _ = send(.settled(batch: first.batch))
        #expect(send(.received(Self.delivery(tag: 3, job: job), generation: 1)).reads.first?.ids == [job.deliveryID])
    }

    /// `count` jobs due now arriving together, on a machine with two reads in flight at most:
    /// the jobs and the reads their arrival started.
    mutating func readyAtOnce(_ count: Int) -> (jobs: [DeliveryJob], reads: [(batch: Int, ids: [UUID])]) {
        machine = DeliveryMachine(settings: .init(policy: Self.policy, timeout: 30, connectTimeout: 10, batchesInFlight: 2))
        _ = send(.connected(generation: 1))
        let jobs = (1...count).map { _ in Self.job() }
        let deliveries = jobs.enumerated().map { Self.delivery(tag: UInt64($0.offset + 1), job: $0.element) }
        return (jobs, send(.deliveries(deliveries, generation: 1)).reads)
    }

    @Test mutating func manyJobsReadyAtOnceAreReadInAShortFirstBatchAndTheRestAlongsideIt() throws {
        let (jobs, reads) = readyAtOnce(250)
        // The first POSTs need only a short read; the rest is read while they are out.
        #expect(reads.map(\.ids.count) == [100, 150])
        #expect(reads.flatMap(\.ids) == jobs.map(\.deliveryID))
        let first = try #require(reads.first)
        let posts = send(
            .read(batch: first.batch, Dictionary(uniqueKeysWithValues: jobs.prefix(100).map { ($0.deliveryID, Self.target()) }))
        ).posts
        #expect(!posts.isEmpty)
    }

    @Test mutating func aThousandJobsReadyAtOnceAreReadInBatchesThatDoubleSoThePostsNeverWaitForALongRead() throws {
        let (jobs, reads) = readyAtOnce(1000)
        #expect(reads.map(\.ids.count) == [100, 200])
        func targets(_ read: (batch: Int, ids: [UUID])) -> [UUID: DeliveryStore.Target] {
            Dictionary(uniqueKeysWithValues: read.ids.map { ($0, Self.target()) })
        }
        // The first read back: the next takes twice the one still out.
        let afterFirst = send(.read(batch: reads[0].batch, targets(reads[0])))
        #expect(!afterFirst.posts.isEmpty)
        #expect(afterFirst.reads.map(\.ids.count) == [400])
        // The second back: the rest (300, under twice the 400 still out).
        let afterSecond = send(.read(batch: reads[1].batch, targets(reads[1])))
        #expect(afterSecond.reads.map(\.ids.count) == [300])
        let all = reads + afterFirst.reads + afterSecond.reads
        #expect(all.flatMap(\.ids) == jobs.map(\.deliveryID))
    }

    @Test mutating func outcomesGatherWhileTheirBatchsPostsAreOutThenSettleTogether() throws {
        _ = send(.connected(generation: 1))
        let jobs = (1...4).map { _ in Self.job() }
        let deliveries = jobs.enumerated().map { Self.delivery(tag: UInt64($0.offset + 1), job: $0.element) }
        let read = try #require(send(.deliveries(deliveries, generation: 1)).reads.first)
        let posts = send(.read(batch: read.batch, Dictionary(uniqueKeysWithValues: jobs.map { ($0.deliveryID, Self.target()) }))).posts
        #expect(posts.count == 4)
        // The first answers wait while the others are out: the POSTs come first.
        #expect(send(.posted(Self.outcome(posts[0].id, status: 200)), after: 0.01).settles.isEmpty)
        #expect(send(.posted(Self.outcome(posts[1].id, status: 200)), after: 0.01).settles.isEmpty)
        // A park, a retry or a dead letter does not wait.
        let failed = send(.posted(Self.outcome(posts[2].id, status: 500)), after: 0.01).settles
        #expect(failed.first?.items.map(\.tag).sorted() == [1, 2, 3])
        let settled = try #require(failed.first)
        #expect(send(.settled(batch: settled.batch)).acks.flatMap(\.tags).sorted() == [1, 2, 3])
    }

    @Test mutating func gatheredOutcomesSettleAfterTheSettleDelayEvenWithPostsStillOut() throws {
        _ = send(.connected(generation: 1))
        let jobs = (1...2).map { _ in Self.job() }
        let deliveries = jobs.enumerated().map { Self.delivery(tag: UInt64($0.offset + 1), job: $0.element) }
        let read = try #require(send(.deliveries(deliveries, generation: 1)).reads.first)
        let posts = send(.read(batch: read.batch, Dictionary(uniqueKeysWithValues: jobs.map { ($0.deliveryID, Self.target()) }))).posts
        #expect(send(.posted(Self.outcome(posts[0].id, status: 200))).settles.isEmpty)
        #expect(send(.tick, after: 0.05).settles.isEmpty)
        #expect(send(.tick, after: 0.06).settles.first?.items.map(\.tag) == [1], "settled 110 ms after it was gathered")
        #expect(machine.jobs[1] != nil, "acked only after it is recorded")
    }

    /// Six jobs due `ahead` seconds from now fill a window of six; returns their POSTs.
    mutating func fullWindow(ahead: Double) throws -> [HTTPPost] {
        machine = DeliveryMachine(settings: .init(policy: Self.policy, timeout: 30, batchesInFlight: 1, window: 6))
        _ = send(.connected(generation: 1))
        let jobs = (1...6).map { _ in Self.job(scheduledFor: now.addingTimeInterval(ahead)) }
        let deliveries = jobs.enumerated().map { Self.delivery(tag: UInt64($0.offset + 1), job: $0.element) }
        var arrived = send(.deliveries(deliveries, generation: 1))
        if ahead > 0 {
            #expect(arrived.reads.isEmpty, "held")
            arrived = send(.tick, after: ahead)
        }
        let batch = try #require(arrived.reads.first).batch
        let posts = send(.read(batch: batch, Dictionary(uniqueKeysWithValues: jobs.map { ($0.deliveryID, Self.target()) }))).posts
        #expect(posts.count == 6)
        return posts
    }

    @Test mutating func jobsDueOnArrivalThatFillTheWindowSettleOnceHalfOfItIsAnswered() throws {
        // A burst or a backlog: more jobs wait in the queue for these acks, so outcomes stop
        // gathering at half the window, with POSTs still out and well before the settle delay.
        let posts = try fullWindow(ahead: 0)
        #expect(send(.posted(Self.outcome(posts[0].id, status: 200)), after: 0.001).settles.isEmpty)
        #expect(send(.posted(Self.outcome(posts[1].id, status: 200)), after: 0.001).settles.isEmpty)
        let settle = try #require(send(.posted(Self.outcome(posts[2].id, status: 200)), after: 0.001).settles.first)
        #expect(settle.items.count == 3)
        #expect(send(.settled(batch: settle.batch)).acks.flatMap(\.tags).count == 3)
    }

    @Test mutating func heldJobsThatFillTheWindowGatherAsBefore() throws {
        // Jobs published ahead of their time and released together (1,000 a second): nothing
        // waits behind them, and their POSTs go first.
        let posts = try fullWindow(ahead: 0.2)
        for post in posts.prefix(5) {
            #expect(send(.posted(Self.outcome(post.id, status: 200)), after: 0.001).settles.isEmpty)
        }
        #expect(send(.posted(Self.outcome(posts[5].id, status: 200)), after: 0.001).settles.first?.items.count == 6)
    }

    /// Two jobs (tags 1 and 2) POSTed and answered one after the other, with two record
    /// batches in flight at once: the first job's batch, then the second's.
    mutating func twoRecordBatches() throws -> (
        earlier: (batch: Int, items: [DeliveryMachine.Settlement]), later: (batch: Int, items: [DeliveryMachine.Settlement])
    ) {
        machine = DeliveryMachine(settings: .init(policy: Self.policy, timeout: 30, connectTimeout: 10, batchesInFlight: 2))
        let first = try posted(tag: 1, job: Self.job())
        let earlier = try #require(send(.posted(Self.outcome(first.id, status: 200))).settles.first)
        let second = try posted(tag: 2, job: Self.job())
        let later = try #require(send(.posted(Self.outcome(second.id, status: 200))).settles.first)
        return (earlier, later)
    }

    @Test mutating func batchesSettledOutOfOrderAreAckedInOrder() throws {
        // Two record batches in flight; the later (smaller) one comes back first. Its acks wait
        // for the earlier's, so that the oldest go in one multiple ack, not each alone.
        let (earlier, later) = try twoRecordBatches()
        #expect(earlier.batch != later.batch)
        #expect(send(.settled(batch: later.batch)).acks.isEmpty, "waits for the batch started before it")
        #expect(send(.settled(batch: earlier.batch)).acks.map(\.tags) == [[1], [2]])
        #expect(machine.jobs.isEmpty)
    }

    @Test mutating func aFailedEarlierBatchDoesNotHoldBackTheAcksOfTheNext() throws {
        let (earlier, later) = try twoRecordBatches()
        #expect(send(.settled(batch: later.batch)).acks.isEmpty)
        #expect(send(.settleFailed(batch: earlier.batch, reason: "gone")).acks.map(\.tags) == [[2]], "tried again later, alone")
        let again = try #require(send(.tick, after: 1).settles.first)
        #expect(send(.settled(batch: again.batch)).acks.map(\.tags) == [[1]])
    }

    @Test mutating func deliveriesAndOutcomesThatArriveTogetherShareOneBatch() throws {
        _ = send(.connected(generation: 1))
        let jobs = (1...3).map { _ in Self.job() }
        let deliveries = jobs.enumerated().map { Self.delivery(tag: UInt64($0.offset + 1), job: $0.element) }
        let read = try #require(send(.deliveries(deliveries, generation: 1)).reads.first)
        #expect(read.ids == jobs.map(\.deliveryID))
        let posts = send(.read(batch: read.batch, Dictionary(uniqueKeysWithValues: jobs.map { ($0.deliveryID, Self.target()) }))).posts
        #expect(posts.count == 3)
        let settles = send(.outcomes(posts.map { Self.outcome($0.id, status: 200) })).settles
        #expect(settles.count == 1)
        #expect(settles.first?.items.map(\.tag).sorted() == [1, 2, 3])
    }

    @Test mutating func aFailedReadIsTriedAgainAfterItsPause() throws {
        _ = send(.connected(generation: 1))
        let job = Self.job()
        let read = try #require(send(.received(Self.delivery(tag: 1, job: job), generation: 1)).reads.first)
        let failed = send(.readFailed(batch: read.batch, reason: "connection refused"))
        #expect(failed.notes == [.readFailed(reason: "connection refused")])
        #expect(failed.reads.isEmpty)
        #expect(send(.tick, after: 0.2).reads.isEmpty)
        let again = try #require(send(.tick, after: 0.4).reads.first)
        #expect(again.ids == [job.deliveryID])
        #expect(send(.read(batch: again.batch, [job.deliveryID: Self.target()])).posts.count == 1)
    }

    @Test mutating func aFailedSettlementIsTriedAgainAndAckedOnlyAfterItSucceeds() throws {
        let post = try posted(job: Self.job())
        let settle = try #require(send(.posted(Self.outcome(post.id, status: 500))).settles.first)
        let failed = send(.settleFailed(batch: settle.batch, reason: "broker gone"))
        #expect(failed.acks.isEmpty && failed.settles.isEmpty)
        #expect(send(.tick, after: 0.5).settles.isEmpty)
        let again = try #require(send(.tick, after: 0.6).settles.first)
        #expect(again.items.map(\.tag) == [1])
        #expect(again.items[0].message?.exchange == settle.items[0].message?.exchange)
        #expect(send(.settled(batch: again.batch)).acks.first?.tags == [1])
    }

    @Test mutating func aSettlementWhoseMessagesWentOutButWhoseRecordFailedDoesNotPublishThemAgain() throws {
        // A retry (500) and a capacity park publish a message each; PostgreSQL goes away
        // between the confirm and the record (seen: jobs POSTed twice after a restart).
        let post = try posted(job: Self.job())
        let settle = try #require(send(.posted(Self.outcome(post.id, status: 500))).settles.first)
        #expect(settle.items[0].message != nil)
        _ = send(.settleFailed(batch: settle.batch, reason: "database gone", published: true))
        let again = try #require(send(.tick, after: 1.1).settles.first)
        #expect(again.items.map(\.tag) == [1])
        #expect(again.items[0].message == nil, "only the record is tried again")
        #expect(again.items[0].attempt?.state == .retrying)
        #expect(send(.settled(batch: again.batch)).acks.first?.tags == [1])
    }

    @Test mutating func answersToUnknownBatchesAndTransfersChangeNothing() throws {
        _ = try posted(job: Self.job())
        #expect(send(.settled(batch: 999)).isEmpty)
        #expect(send(.read(batch: 999, [:])).isEmpty)
        #expect(send(.readFailed(batch: 999, reason: "x")).isEmpty)
        #expect(send(.settleFailed(batch: 999, reason: "x")).isEmpty)
        #expect(send(.posted(Self.outcome(999, status: 200))).isEmpty)
        #expect(machine.jobs.count == 1)
    }

    // MARK: The connection

    @Test mutating func aLostConnectionAbandonsItsWorkAndItsLateAnswersSettleNothing() throws {
        let job = Self.job()
        let post = try posted(tag: 1, job: job)
        _ = send(.received(Self.delivery(tag: 2, job: Self.job()), generation: 1))
        let lost = send(.lost(generation: 1))
        #expect(lost.cancelled == [post.id])
        #expect(lost.notes == [.abandoned(posts: 1, jobs: 2)])
        #expect(machine.jobs.isEmpty)

        // The broker delivers the job again on the new connection, under tag 1 again.
        _ = send(.connected(generation: 2))
        let read = try #require(send(.received(Self.delivery(tag: 1, job: job, redeliveries: 1), generation: 2)).reads.first)
        let repost = try #require(send(.read(batch: read.batch, [job.deliveryID: Self.target()])).posts.first)
        #expect(repost.id != post.id)
        // The old POST's outcome arrives late: it is not taken for the new one.
        #expect(send(.posted(Self.outcome(post.id, status: 500))).isEmpty)
        let settle = try #require(send(.posted(Self.outcome(repost.id, status: 200))).settles.first)
        let acks = send(.settled(batch: settle.batch)).acks
        #expect(acks.first?.tags == [1] && acks.first?.generation == 2)
    }

    @Test mutating func aSettlementOfALostConnectionIsNotAckedOnTheNextOne() throws {
        let post = try posted(job: Self.job())
        let settle = try #require(send(.posted(Self.outcome(post.id, status: 200))).settles.first)
        _ = send(.lost(generation: 1))
        _ = send(.connected(generation: 2))
        #expect(send(.settled(batch: settle.batch)).acks.isEmpty)
    }

    @Test mutating func deliveriesAndLossesOfAnOlderConnectionAreIgnored() throws {
        _ = try posted(job: Self.job())
        _ = send(.lost(generation: 1))
        _ = send(.connected(generation: 2))
        _ = send(.received(Self.delivery(tag: 5, job: Self.job()), generation: 2))
        #expect(send(.received(Self.delivery(tag: 6, job: Self.job()), generation: 1)).isEmpty)
        #expect(send(.lost(generation: 1)).isEmpty)
        #expect(machine.jobs.keys.sorted() == [5])
    }

    // MARK: Jobs that arrive before their time (BEAT_LOOKAHEAD)

    @Test mutating func anEarlyJobIsHeldUnreadUntilItsTimeThenReadAndPosted() throws {
        _ = send(.connected(generation: 1))
        let later = Self.job(scheduledFor: now.addingTimeInterval(0.4))
        let sooner = Self.job(scheduledFor: now.addingTimeInterval(0.2))
        #expect(send(.received(Self.delivery(tag: 1, job: later), generation: 1)).reads.isEmpty, "not read before its time")
        #expect(send(.received(Self.delivery(tag: 2, job: sooner), generation: 1)).reads.isEmpty)
        #expect(machine.jobs[1]?.phase == .holding && machine.jobs[2]?.phase == .holding)
        // (Due times travel as microseconds in the message.)
        #expect(abs(try #require(machine.nextHold).timeIntervalSince(sooner.scheduledFor)) < 1e-6, "the alarm is for the sooner one")
        #expect(send(.tick, after: 0.1).reads.isEmpty)

        // At its due time (not a millisecond before) the sooner one is read; the later one waits.
        let due = send(.tick, after: 0.1)
        #expect(due.reads.map(\.ids) == [[sooner.deliveryID]])
        #expect(abs(try #require(machine.nextHold).timeIntervalSince(later.scheduledFor)) < 1e-6)
        let post = try #require(send(.read(batch: due.reads[0].batch, [sooner.deliveryID: Self.target()])).posts.first)
        #expect(post.headers.contains("Idempotency-Key: \(sooner.deliveryID.uuidString.lowercased())"))
        #expect(send(.tick, after: 0.2).reads.map(\.ids) == [[later.deliveryID]])
        #expect(machine.nextHold == nil)
    }

    /// Receives `count` jobs held until `due`, read ahead (one read of them all): the tags 1...count.
    mutating func heldBurst(_ count: Int, due: Date) throws -> [DeliveryJob] {
        _ = send(.connected(generation: 1))
        _ = send(.targetsWatched(true))
        let jobs = (0..<count).map { _ in Self.job(scheduledFor: due) }
        var actions = send(.deliveries(jobs.enumerated().map { Self.delivery(tag: UInt64($0.offset + 1), job: $0.element) }, generation: 1))
        var read = 0
        while read < count {
            if actions.reads.isEmpty { actions = send(.tick, after: machine.settings.readAheadGather) }
            let ahead = try #require(actions.reads.first)
            read += ahead.ids.count
            actions = send(.read(batch: ahead.batch, Dictionary(uniqueKeysWithValues: ahead.ids.map { ($0, Self.target()) })))
            #expect(actions.posts.isEmpty)
        }
        #expect(machine.jobs.values.allSatisfy { $0.phase == .holding && $0.target != nil })
        return jobs
    }

    @Test mutating func aHeldBurstIsAdmittedABatchATurnAndTheRestFollowsAtOnce() throws {
        // 5,000 held jobs due at one instant: the first POSTs leave after 2,000 admissions,
        // not 5,000; the rest are admitted in the turns that follow (a tick at once).
        let due = now.addingTimeInterval(1)
        _ = try heldBurst(5_000, due: due)
        let first = send(.tick, after: due.timeIntervalSince(now))
        #expect(!first.posts.isEmpty, "POSTs leave in the first turn")
        #expect(machine.held.count == 3_000, "two thousand admitted")
        #expect(try #require(machine.nextHold) <= now, "the loop ticks again at once")
        _ = send(.tick)
        _ = send(.tick)
        #expect(machine.held.isEmpty && machine.nextHold == nil)
        #expect(machine.jobs.values.allSatisfy { $0.phase != .holding })
    }

    @Test mutating func outcomesOfAHeldBurstGatherUntilItsLastJobIsPosted() throws {
        let due = now.addingTimeInterval(1)
        _ = try heldBurst(5_000, due: due)
        var posts = send(.tick, after: due.timeIntervalSince(now)).posts
        #expect(machine.held.count == 3_000)
        // Answered quickly, again and again: none is recorded (though `settleDelay` passes,
        // and more than nine tenths of the worker's jobs wait for their record) while held
        // jobs wait to be admitted or for their receiver.
        var recorded: [Int] = []
        while machine.heldWaiting > 0 || !machine.held.isEmpty {
            let actions = send(.outcomes(posts.map { Self.outcome($0.id, status: 200) }), after: 0.002)
            for settle in actions.settles {
                #expect(machine.heldWaiting == 0 && machine.held.isEmpty, "gathering while held jobs wait")
                recorded.append(settle.items.count)
                _ = send(.settled(batch: settle.batch))
            }
            posts = actions.posts + send(.tick).posts
        }
        #expect(now.timeIntervalSince(due) > machine.settings.settleDelay)
        // The last are POSTed: the usual gathering again, and everything answered is recorded.
        let settles = send(.outcomes(posts.map { Self.outcome($0.id, status: 200) }), after: 0.002).settles
        recorded += settles.map(\.items.count)
        #expect(recorded.reduce(0, +) == 5_000, "\(recorded)")
    }

    @Test mutating func aHeldBurstsOutcomesAreRecordedAfterBurstSettleDelayAtMost() throws {
        machine = DeliveryMachine(
            settings: .init(
                policy: Self.policy, timeout: 30, connectTimeout: 10, batchesInFlight: 1, burstSettleDelay: 1, heldAdmitBatch: 10))
        let due = now.addingTimeInterval(1)
        _ = try heldBurst(5_000, due: due)
        let posts = send(.tick, after: due.timeIntervalSince(now)).posts
        _ = send(.outcomes(posts.map { Self.outcome($0.id, status: 200) }), after: 0.01)
        #expect(!machine.held.isEmpty)
        #expect(send(.tick, after: machine.settings.burstSettleDelay - 0.1).settles.isEmpty)
        let settle = try #require(send(.tick, after: 0.1).settles.first, "recorded, though held jobs still wait")
        #expect(settle.items.count == posts.count && settle.items.allSatisfy { $0.attempt?.state == .delivered })
    }

    // MARK: Targets read ahead for held jobs

    /// Connects, says changes of schedules are heard of, and receives `job` (held): returns the
    /// read ahead it starts once reads ahead have gathered (`readAheadGather`, 0.2 s).
    mutating func heldAndReadAhead(_ job: DeliveryJob, tag: UInt64 = 1) throws -> (batch: Int, ids: [UUID]) {
        if machine.generation == 0 { _ = send(.connected(generation: 1)) }
        _ = send(.targetsWatched(true))
        #expect(send(.received(Self.delivery(tag: tag, job: job), generation: 1)).reads.isEmpty, "gathering")
        #expect(machine.jobs[tag]?.phase == .holding)
        return try #require(send(.tick, after: machine.settings.readAheadGather).reads.first)
    }

    @Test mutating func readsAheadGatherIntoOneStatement() throws {
        _ = send(.connected(generation: 1))
        _ = send(.targetsWatched(true))
        let jobs = (0..<3).map { _ in Self.job(scheduledFor: now.addingTimeInterval(2)) }
        for (n, job) in jobs.enumerated() {
            #expect(send(.received(Self.delivery(tag: UInt64(n + 1), job: job), generation: 1), after: 0.05).reads.isEmpty)
        }
        #expect(
            send(.tick, after: 0.15).reads.map(\.ids) == [jobs.map(\.deliveryID)], "one read, once 0.2 s passed since the first arrived")
    }

    @Test mutating func aHeldJobsTargetIsReadAheadAndItIsPostedAtItsInstantWithoutARead() throws {
        let job = Self.job(scheduledFor: now.addingTimeInterval(0.5))
        let ahead = try heldAndReadAhead(job)
        #expect(ahead.ids == [job.deliveryID])
        #expect(send(.read(batch: ahead.batch, [job.deliveryID: Self.target()])).posts.isEmpty, "held until its instant")
        #expect(machine.jobs[1]?.phase == .holding && machine.readAheadBytes > 0)
        let due = send(.tick, after: 0.5)
        #expect(due.reads.isEmpty, "no read at the instant")
        let post = try #require(due.posts.first)
        #expect(post.url == "http://receiver.example/hook" && post.body == Array(#"{"a":1}"#.utf8))
        #expect(machine.readAheadBytes == 0)
    }

    @Test mutating func aChangeOfItsScheduleAfterTheReadAheadHasItReadAgainAtItsInstant() throws {
        let job = Self.job(scheduledFor: now.addingTimeInterval(0.5))
        let ahead = try heldAndReadAhead(job)
        _ = send(.read(batch: ahead.batch, [job.deliveryID: Self.target()]))
        _ = send(.targetsChanged([UUID(), try #require(job.scheduleID)]), after: 0.1)
        #expect(machine.readAheadBytes == 0)
        let due = send(.tick, after: 0.4)
        #expect(due.posts.isEmpty)
        let read = try #require(due.reads.first)
        #expect(read.ids == [job.deliveryID])
        // What the read at the instant says counts (here: the schedule was paused meanwhile).
        let actions = send(.read(batch: read.batch, [job.deliveryID: Self.target(state: .cancelled)]))
        #expect(actions.posts.isEmpty && actions.settles.first?.items.first?.message == nil)
    }

    @Test mutating func aChangeWhileTheReadAheadIsOutDiscardsWhatItReturns() throws {
        let job = Self.job(scheduledFor: now.addingTimeInterval(0.5))
        let ahead = try heldAndReadAhead(job)
        _ = send(.targetsChanged([try #require(job.scheduleID)]))
        _ = send(.read(batch: ahead.batch, [job.deliveryID: Self.target(endpoint: "http://old.example/hook")]))
        #expect(machine.readAheadBytes == 0, "the old target is not kept")
        let read = try #require(send(.tick, after: 0.5).reads.first)
        let post = try #require(send(.read(batch: read.batch, [job.deliveryID: Self.target()])).posts.first)
        #expect(post.url == "http://receiver.example/hook")
    }

    @Test mutating func noChangesHeardOfMeansNoReadAheadAndLosingThemForgetsWhatWasRead() throws {
        _ = send(.connected(generation: 1))
        let unwatched = Self.job(scheduledFor: now.addingTimeInterval(0.5))
        #expect(send(.received(Self.delivery(tag: 1, job: unwatched), generation: 1)).reads.isEmpty, "not read ahead")
        let job = Self.job(scheduledFor: now.addingTimeInterval(0.5))
        let ahead = try heldAndReadAhead(job, tag: 2)
        _ = send(.read(batch: ahead.batch, [job.deliveryID: Self.target()]))
        _ = send(.targetsWatched(false))
        #expect(machine.readAheadBytes == 0)
        #expect(Set(send(.tick, after: 0.5).reads.flatMap(\.ids)) == [unwatched.deliveryID, job.deliveryID], "both read at the instant")
    }

    @Test mutating func targetsReadAheadStayWithinTheirBytes() throws {
        machine = DeliveryMachine(
            settings: .init(policy: Self.policy, timeout: 30, batchesInFlight: 1, readAheadBytes: 300, readAheadBatch: 10))
        let jobs = (0..<3).map { _ in Self.job(scheduledFor: now.addingTimeInterval(0.5)) }
        _ = send(.connected(generation: 1))
        _ = send(.targetsWatched(true))
        _ = send(.deliveries(jobs.enumerated().map { Self.delivery(tag: UInt64($0.offset + 1), job: $0.element) }, generation: 1))
        let ahead = try #require(send(.tick, after: 0.2).reads.first)
        #expect(ahead.ids == jobs.map(\.deliveryID))
        // Each target takes 64 bytes and its text (about 100 here): two fit in 300, not three.
        _ = send(.read(batch: ahead.batch, Dictionary(uniqueKeysWithValues: jobs.map { ($0.deliveryID, Self.target()) })))
        #expect(machine.readAheadBytes <= 300 && machine.readAheadBytes > 0)
        let due = send(.tick, after: 0.3)
        #expect(due.posts.count == 2 && due.reads.map(\.ids) == [[jobs[2].deliveryID]])
    }

    @Test mutating func readsAheadWaitWhileAJobDueNowWaitsForItsRead() throws {
        _ = send(.connected(generation: 1))
        _ = send(.targetsWatched(true))
        let dueNow = Self.job()
        let read = try #require(send(.received(Self.delivery(tag: 1, job: dueNow), generation: 1)).reads.first)
        let held = Self.job(scheduledFor: now.addingTimeInterval(1))
        #expect(send(.received(Self.delivery(tag: 2, job: held), generation: 1)).reads.isEmpty, "one batch in flight at most here")
        #expect(send(.tick, after: 0.2).reads.isEmpty, "gathered, and still waiting for the read of the job due now")
        let answered = send(.read(batch: read.batch, [dueNow.deliveryID: Self.target()]))
        #expect(answered.posts.count == 1 && answered.reads.map(\.ids) == [[held.deliveryID]], "then the read ahead")
    }

    @Test mutating func aHeldJobWhoseScheduleWasCancelledMeanwhileIsNotPosted() throws {
        _ = send(.connected(generation: 1))
        let job = Self.job(scheduledFor: now.addingTimeInterval(0.5))
        _ = send(.received(Self.delivery(tag: 1, job: job), generation: 1))
        let read = try #require(send(.tick, after: 0.5).reads.first)
        // The read at the due time sees what happened since beat published it.
        let actions = send(.read(batch: read.batch, [job.deliveryID: Self.target(state: .cancelled)]))
        #expect(actions.posts.isEmpty)
        let settle = try #require(actions.settles.first)
        #expect(settle.items.count == 1 && settle.items[0].message == nil, "settled without a POST or a dead letter")
    }

    @Test mutating func aJobDueFarAheadRetriesAndPastJobsAreNotHeld() throws {
        _ = send(.connected(generation: 1))
        // A due time beyond maximumHold (a clock far off, or a hostile message): handled at once.
        let far = Self.job(scheduledFor: Date.distantFuture)
        #expect(send(.received(Self.delivery(tag: 1, job: far), generation: 1)).reads.map(\.ids) == [[far.deliveryID]])
        // A retry (attempt 2) is never held, whatever its due time says.
        let retry = Self.job(scheduledFor: now.addingTimeInterval(1))
        _ = send(.received(Self.delivery(tag: 2, job: retry, attempt: 2), generation: 1))
        #expect(machine.jobs[2]?.phase != .holding)
        #expect(machine.nextHold == nil)
    }

    @Test mutating func heldJobsAreHandedBackOnStopAndForgottenWithTheConnection() {
        _ = send(.connected(generation: 1))
        _ = send(.received(Self.delivery(tag: 1, job: Self.job(scheduledFor: now.addingTimeInterval(1))), generation: 1))
        let stop = send(.stop)
        #expect(stop.handedBack == [1])
        #expect(stop.finishes)
        #expect(machine.nextHold == nil)

        var other = DeliveryMachineTests()
        _ = other.send(.connected(generation: 1))
        _ = other.send(.received(Self.delivery(tag: 1, job: Self.job(scheduledFor: other.now.addingTimeInterval(1))), generation: 1))
        _ = other.send(.lost(generation: 1))
        #expect(other.machine.nextHold == nil && other.machine.jobs.isEmpty, "the broker gives held jobs to another worker")
        #expect(other.send(.tick, after: 2).reads.isEmpty)
    }

    // MARK: Stopping

    @Test mutating func aStopHandsBackWhatIsNotPostedAndLetsThePostsFinish() throws {
        let post = try posted(tag: 1, job: Self.job())
        _ = send(.received(Self.delivery(tag: 2, job: Self.job()), generation: 1))
        let stop = send(.stop)
        #expect(stop.contains { if case .pauseConsuming = $0 { true } else { false } })
        #expect(stop.handedBack == [2])
        #expect(!stop.finishes)
        // A delivery already on its way is handed back too.
        #expect(send(.received(Self.delivery(tag: 3, job: Self.job()), generation: 1)).handedBack == [3])

        let settle = try #require(send(.posted(Self.outcome(post.id, status: 200))).settles.first)
        let done = send(.settled(batch: settle.batch))
        #expect(done.acks.first?.tags == [1])
        #expect(done.finishes)
        #expect(send(.tick).isEmpty)
    }

    @Test mutating func aStopWithNothingInFlightFinishesAtOnce() {
        _ = send(.connected(generation: 1))
        #expect(send(.stop).finishes)
    }

    @Test mutating func aStopGivesUpOnPostsThatOutlastItsGrace() throws {
        let post = try posted(job: Self.job())
        _ = send(.stop)
        #expect(!send(.tick, after: 44).finishes)
        let late = send(.tick, after: 2)
        #expect(late.handedBack == [1])
        #expect(late.cancelled == [post.id])
        #expect(late.finishes)
    }
}

// MARK: Reading actions

extension Array where Element == DeliveryMachine.Action {
    var reads: [(batch: Int, ids: [UUID])] {
        compactMap {
            switch $0 {
            case .read(let batch, let ids), .readAhead(let batch, let ids): (batch, ids)
            default: nil
            }
        }
    }
    var posts: [HTTPPost] { compactMap { if case .post(let post) = $0 { post } else { nil } } }
    var settles: [(batch: Int, items: [DeliveryMachine.Settlement])] {
        compactMap { if case .settle(let batch, let items) = $0 { (batch, items) } else { nil } }
    }
    var acks: [(tags: [UInt64], generation: Int)] {
        compactMap { if case .ack(let tags, let generation) = $0 { (tags, generation) } else { nil } }
    }
    var handedBack: [UInt64] {
        flatMap { action -> [UInt64] in if case .handBack(let tags, _) = action { tags } else { [] } }
    }
    var cancelled: [UInt64] {
        flatMap { action -> [UInt64] in if case .cancelPosts(let ids) = action { ids } else { [] } }
    }
    var notes: [DeliveryMachine.Note] { compactMap { if case .note(let note) = $0 { note } else { nil } } }
    var finishes: Bool { contains { if case .finish = $0 { true } else { false } } }
}

/// The machine's receivers: a slow or failing receiver holds a bounded share of the window.
@Suite struct DeliveryMachineReceiverTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)
    var machine = DeliveryMachine(
        settings: .init(
            policy: DeliveryMachineTests.policy, timeout: 30, batchesInFlight: 100,
            receivers: .init(maximumConcurrency: 2, openAfter: 60, minimumFailures: 5, probeInterval: 30)))
    var now = start

    mutating func send(_ event: DeliveryMachine.Event, after seconds: Double = 0) -> [DeliveryMachine.Action] {
        now = now.addingTimeInterval(seconds)
        return machine.handle(event, now: now)
    }

    /// Receives a job for `url` and answers its read; returns the actions of the read.
    mutating func ready(tag: UInt64, url: String, job: DeliveryJob = DeliveryMachineTests.job()) -> [DeliveryMachine.Action] {
        if machine.generation == 0 { _ = send(.connected(generation: 1)) }
        let received = send(.received(DeliveryMachineTests.delivery(tag: tag, job: job), generation: 1))
        guard let read = received.reads.first else { return received }
        return send(.read(batch: read.batch, [job.deliveryID: DeliveryMachineTests.target(endpoint: url)]))
    }

    @Test mutating func jobsBeyondAReceiversShareAreParkedUntouchedAndOthersFlow() throws {
        var posts: [HTTPPostSummary] = []
        var parked: [DeliveryMachine.Settlement] = []
        var batches: [Int] = []
        for tag in 1...6 {
            // The first two requests have been out for 2 s when the others come.
            if tag == 3 { _ = send(.tick, after: 2) }
            let actions = ready(tag: UInt64(tag), url: "http://slow.example:9001/slow")
            posts += actions.posts.map { HTTPPostSummary(id: $0.id, url: $0.url) }
            parked += actions.settles.flatMap(\.items)
            batches += actions.settles.map(\.batch)
        }
        #expect(posts.count == 2, "RECEIVER_CONCURRENCY")
        #expect(machine.jobs.values.filter { $0.phase == .waitingForReceiver }.count == 2)
        #expect(parked.map(\.tag) == [5, 6])
        let message = try #require(parked.first?.message)
        #expect(message.exchange == DeliveryTopology.parkName(milliseconds: DeliveryTopology.parkDelays[0]))
        #expect(message.headers[DeliveryHeaders.attempt] == nil, "the attempt is untouched")
        #expect(parked.allSatisfy { $0.attempt == nil }, "nothing recorded")

        // Another receiver on the same host (another port) is not held up at all.
        let fast = ready(tag: 7, url: "http://slow.example:9002/fast")
        #expect(fast.posts.count == 1)

        // A parked job is acked once its park is confirmed: its prefetch slot is free.
        let acked = batches.flatMap { send(.settled(batch: $0)).acks.flatMap(\.tags) }
        #expect(acked.sorted() == [5, 6])
    }

    /// Readies `jobs` jobs for one receiver whose first two requests have been out for
    /// `outFor` seconds when the third comes; returns each park's delay in seconds, in order.
    mutating func parkDelays(jobs: Int, outFor seconds: Double) -> [Int] {
        var delays: [Int] = []
        for tag in 1...jobs {
            if tag == 3 { _ = send(.tick, after: seconds) }
            let actions = ready(tag: UInt64(tag), url: "http://slow.example/a")
            for item in actions.settles.flatMap(\.items) {
                guard let exchange = item.message?.exchange else { continue }
                delays.append(exchange == DeliveryTopology.parkName(milliseconds: DeliveryTopology.parkDelays[1]) ? 10 : 1)
            }
        }
        return delays
    }

    @Test mutating func aBacklogParksForASecondUntilItWouldTakeLongerThanTheLongDelayToDrain() throws {
        // Two requests out for 2 s: two may wait, the rest is parked. A receiver that answers
        // two a second drains 20 parked jobs in the long delay (10 s): up to then, 1 s parks.
        let delays = parkDelays(jobs: 40, outFor: 2)
        #expect(delays.count == 36)
        let short = delays.prefix { $0 == 1 }.count
        #expect(short >= 18 && short <= 22, "about 20 short parks first: \(delays)")
        #expect(delays.dropFirst(short).allSatisfy { $0 == 10 }, "then long ones: \(delays)")
    }

    @Test mutating func aBurstRightAfterAnIdleSpellParksForASecondOnly() throws {
        // The same backlog, but its receiver has been busy for half a second only (after an
        // outage, or when held jobs all fall due): too little to judge it slow by.
        let delays = parkDelays(jobs: 60, outFor: 0.5)
        // (54 parked in a second where 4 may wait: more than the long delay's worth.)
        #expect(delays.count == 54 && delays.allSatisfy { $0 == 1 }, "\(delays)")
    }

    @Test mutating func anAnswerStartsTheNextWaitingJob() throws {
        var first: HTTPPost?
        for tag in 1...3 {
            let actions = ready(tag: UInt64(tag), url: "http://slow.example/a")
            first = first ?? actions.posts.first
        }
        let post = try #require(first)
        let actions = send(.posted(DeliveryMachineTests.outcome(post.id, status: 200)))
        #expect(actions.posts.count == 1)
        #expect(machine.jobs[3]?.phase != .waitingForReceiver)
    }

    @Test mutating func aFullReceiversJobIsParkedWithoutReadingItsTarget() throws {
        // Occurrences of one schedule (one routing key).
        let schedule = UUID()
        func occurrence(_ minute: Double) -> DeliveryJob {
            DeliveryJob(
                deliveryID: UUID(), scheduleID: schedule, scheduledFor: DeliveryMachineTests.start.addingTimeInterval(-60 * minute),
                kind: .schedule)
        }
        for tag in 1...4 {
            if tag == 3 { _ = send(.tick, after: 2) }
            _ = ready(tag: UInt64(tag), url: "http://slow.example/a", job: occurrence(Double(tag)))
        }
        // Same schedule (same routing key): its receiver is known to be full.
        let actions = send(.received(DeliveryMachineTests.delivery(tag: 5, job: occurrence(5)), generation: 1))
        #expect(actions.reads.isEmpty)
        #expect(actions.notes.contains(.parked(.capacity)))
    }

    @Test mutating func aRetryAfterParksTheReceiversWaitingJobsForLonger() throws {
        var first: HTTPPost?
        for tag in 1...4 {
            let actions = ready(tag: UInt64(tag), url: "http://busy.example/a")
            first = first ?? actions.posts.first
        }
        let post = try #require(first)
        let actions = send(.posted(DeliveryMachineTests.outcome(post.id, status: 429, retryAfter: "120")))
        let parks = actions.settles.flatMap(\.items).filter {
            $0.message?.exchange == DeliveryTopology.parkName(milliseconds: DeliveryTopology.parkDelays[1])
        }
        #expect(parks.map(\.tag).sorted() == [3, 4])
        #expect(actions.notes.filter { $0 == .parked(.paused) }.count == 2)
    }

    @Test mutating func anOperatorsOpenParksWaitingJobsAndANewJob() throws {
        for tag in 1...4 { _ = ready(tag: UInt64(tag), url: "http://r.example/a") }
        let actions = send(.command(receiver: "http://r.example:80", .open))
        #expect(actions.notes.contains { if case .receiver("http://r.example:80", let t) = $0 { t.to == .open } else { false } })
        #expect(actions.notes.filter { $0 == .parked(.open) }.count == 2)
        #expect(ready(tag: 9, url: "http://r.example/b").notes.contains(.parked(.open)))
    }

    @Test mutating func aStopHandsBackJobsWaitingForTheirReceiver() throws {
        for tag in 1...4 { _ = ready(tag: UInt64(tag), url: "http://r.example/a") }
        let stop = send(.stop)
        #expect(stop.handedBack == [3, 4])
        #expect(machine.receivers["http://r.example:80"]?.waiting.isEmpty == true)
    }
}

struct HTTPPostSummary: Equatable {
    let id: UInt64
    let url: String
}

/// The egress guard in the machine: stored literal addresses are refused again, and a
/// refusal at connect time is dead at once.
@Suite struct DeliveryMachineEgressTests {
    @Test func aStoredLiteralAddressInARefusedRangeIsDeadLetteredWithoutAPost() throws {
        var machine = DeliveryMachine(settings: .init(policy: DeliveryMachineTests.policy, timeout: 30))
        let now = DeliveryMachineTests.start
        _ = machine.handle(.connected(generation: 1), now: now)
        let job = DeliveryMachineTests.job()
        let read = try #require(
            machine.handle(.received(DeliveryMachineTests.delivery(tag: 1, job: job), generation: 1), now: now).reads.first)
        let actions = machine.handle(
            .read(batch: read.batch, [job.deliveryID: DeliveryMachineTests.target(endpoint: "http://169.254.169.254/latest")]), now: now)
        #expect(actions.posts.isEmpty)
        let reason = actions.settles.first?.items.first?.message?.headers[DeliveryHeaders.reason]?.stringValue ?? ""
        #expect(reason.hasPrefix("egress-denied"), "\(reason)")
    }

    @Test func aRefusalAtConnectTimeIsDeadAtOnceAndGuardedUnlessTheHostIsAllowedByName() throws {
        let egress = try #require(EgressPolicy(allow: "hooks.internal"))
        var machine = DeliveryMachine(settings: .init(policy: DeliveryMachineTests.policy, timeout: 30, egress: egress))
        let now = DeliveryMachineTests.start
        _ = machine.handle(.connected(generation: 1), now: now)
        var posts: [HTTPPost] = []
        for (tag, endpoint) in [(UInt64(1), "http://rebinding.example/x"), (2, "http://hooks.internal/x")] {
            let job = DeliveryMachineTests.job()
            let read = try #require(
                machine.handle(.received(DeliveryMachineTests.delivery(tag: tag, job: job), generation: 1), now: now).reads.first)
            posts +=
                machine.handle(.read(batch: read.batch, [job.deliveryID: DeliveryMachineTests.target(endpoint: endpoint)]), now: now).posts
        }
        #expect(posts.map(\.guarded) == [true, false], "a host allowed by name is not judged by address")
        let outcome = HTTPOutcome(
            id: posts[0].id, status: nil, failure: .egressDenied, error: "egress-denied: 10.0.0.1 is in a refused range", retryAfter: nil,
            seconds: 0)
        let actions = machine.handle(.posted(outcome), now: now)
        let settlement = try #require(actions.settles.first?.items.first)
        #expect(settlement.message?.exchange == DeliveryTopology.deadExchange, "no retry: the address stays refused")
        #expect(settlement.attempt?.state == .dead)
    }

    @Test func anEndpointIsJudgedOnceAndRememberedWithinABound() throws {
        let egress = try #require(EgressPolicy(allow: "hooks.internal"))
        var machine = DeliveryMachine(settings: .init(policy: DeliveryMachineTests.policy, timeout: 30, egress: egress))
        let endpoints = ["http://169.254.169.254/latest", "ftp://example.com/x", "http://Example.COM/a", "http://hooks.internal/x"]
        for endpoint in endpoints {
            let judged = DeliveryMachine.facts(of: endpoint, egress: egress)
            #expect(machine.facts(of: endpoint) == judged)
            #expect(machine.facts(of: endpoint) == judged, "the remembered answer is the same")
        }
        let facts = endpoints.map { DeliveryMachine.facts(of: $0, egress: egress) }
        #expect(facts[0].problem?.hasPrefix("egress-denied") == true)
        #expect(facts[1].problem?.contains("not an http(s) URL") == true)
        #expect(facts[2].problem == nil && facts[2].guarded)
        #expect(facts[2].receiver == DeliveryMachine.facts(of: "http://example.com:80/b", egress: egress).receiver)
        #expect(facts[3].problem == nil && !facts[3].guarded, "a host allowed by name is not judged by address")
        // Tenants choose endpoints: the memory starts again rather than grow.
        for index in 0..<(DeliveryMachine.endpointMemory + 10) { _ = machine.facts(of: "http://h\(index).example/") }
        #expect(machine.endpoints.count <= DeliveryMachine.endpointMemory)
        #expect(machine.facts(of: endpoints[0]) == facts[0])
        let huge = "http://example.com/" + String(repeating: "a", count: 1_000_000)
        #expect(machine.facts(of: huge).problem != nil)
        #expect(machine.endpoints[huge] == nil, "a megabyte of URL is judged, not kept")
    }
}
