import AMQP
import DeliveryQueues
import Foundation
import HTTPClient
import SchedulerCore
import SchedulerStore
import Testing

@testable import Worker

/// Held jobs in batch messages: how beat makes them, how a worker reads them, and that a
/// batch's message is acked only when every job of it has its outcome.
@Suite struct JobBatchTests {
    static let start = DeliveryMachineTests.start

    // MARK: The message

    @Test func aRunOfHeldJobsGoesInBatchesOfAHundredAndAJobDueNowAloneOnTheMainQueue() throws {
        var routing = HeldRouting()
        let held = (0..<221).map { DeliveryMachineTests.job(scheduledFor: Self.start.addingTimeInterval(1 + Double($0) / 1000)) }
        let overdue = DeliveryMachineTests.job(scheduledFor: Self.start.addingTimeInterval(-1))
        let messages = JobBatch.messages(Array(held[..<120]) + [overdue] + Array(held[120...]), now: Self.start, routing: &routing)
        #expect(
            messages.map(\.exchange) == [String](repeating: DeliveryTopology.heldExchange, count: 2) + [DeliveryTopology.exchange]
                + [String](repeating: DeliveryTopology.heldExchange, count: 2))
        #expect(messages.map { $0.headers[DeliveryHeaders.jobs]?.intValue } == [100, 20, nil, 100, nil])
        #expect(messages[2].routingKey == overdue.routingKey && messages[2].messageID == overdue.deliveryID.lowercasedText)
        // The last run's single job is a message of one job, its own key and id.
        #expect(messages[4].routingKey == held[220].routingKey)
        // Every held job, once, in order.
        var read: [DeliveryJob] = []
        for message in messages where message.exchange == DeliveryTopology.heldExchange {
            if JobBatch.isBatch(message.body) {
                #expect(message.routingKey == JobBatch.routingKey)
                read += try JobBatch.elements(of: message.body).map { try $0.job.get() }
            } else {
                read.append(try DeliveryJob(body: message.body))
            }
        }
        #expect(read.map(\.deliveryID) == held.map(\.deliveryID))
        #expect(read.map(\.scheduledFor) == held.map(\.scheduledFor))
    }

    @Test func aBatchTooLargeTooLongEmptyOrNotJSONIsRefusedWhole() {
        let job = String(decoding: DeliveryMachineTests.job().json.serializedBytes, as: UTF8.self)
        let cases: [(String, String)] = [
            ("[" + [String](repeating: job, count: 101).joined(separator: ",") + "]", "101 jobs"),
            ("[" + String(repeating: " ", count: DeliveryLimits.maximumBatchBytes) + "]", "bytes"),
            ("[]", "not a list of jobs"), ("[{\"delivery_id\":", "not JSON"), ("[1,]", "not JSON"),
        ]
        for (body, reason) in cases {
            #expect(JobBatch.isBatch(Array(body.utf8)))
            #expect(throws: FieldErrorMessage.self) { try JobBatch.elements(of: Array(body.utf8)) }
            do {
                _ = try JobBatch.elements(of: Array(body.utf8))
            } catch {
                #expect(error.message.contains(reason), "\(error.message)")
            }
        }
        #expect(JobBatch.message([]).body == Array("[]".utf8), "no jobs: an empty batch, not a trap")
        #expect(!JobBatch.isBatch(Array(" \n{\"a\":[1]}".utf8)) && JobBatch.isBatch(Array(" \r\n\t[".utf8)) && !JobBatch.isBatch([]))
    }

    @Test func theHeldQueuesPrefetchHoldsTheWindowInMessagesOfAHundred() {
        #expect(DeliveryLoop.heldPrefetch(window: 60_000) == 600)
        #expect(DeliveryLoop.heldPrefetch(window: 60_001) == 601)
        #expect(DeliveryLoop.heldPrefetch(window: 1) == 1)
        #expect(DeliveryLoop.heldPrefetch(window: 0) == 1 && DeliveryLoop.heldPrefetch(window: -5) == 1)
        #expect(DeliveryLoop.heldPrefetch(window: .max) == Int.max / 100 + 1)
    }

    // MARK: The worker

    var machine = DeliveryMachine(settings: .init(policy: DeliveryMachineTests.policy, timeout: 30, batchesInFlight: 1))
    var now = start

    mutating func send(_ event: DeliveryMachine.Event, after seconds: Double = 0) -> [DeliveryMachine.Action] {
        now = now.addingTimeInterval(seconds)
        return machine.handle(event, now: now)
    }

    /// A batch message of these jobs (their bodies as beat writes them), or of `body`.
    static func batch(tag: UInt64, _ jobs: [DeliveryJob], body: [UInt8]? = nil, redeliveries: Int64? = nil) -> AMQPDelivery {
        let message = JobBatch.message(jobs)
        var headers = message.headers
        if let redeliveries { headers[DeliveryHeaders.deliveryCount] = .int(redeliveries) }
        return AMQPDelivery(
            deliveryTag: tag, exchange: DeliveryTopology.heldExchange, routingKey: message.routingKey, redelivered: redeliveries != nil,
            body: body ?? message.body, messageID: nil, headers: headers)
    }

    /// Jobs due at `due`, received in one batch (tag 9) and held; their keys.
    mutating func heldBatch(_ jobs: [DeliveryJob], redeliveries: Int64? = nil) -> [UInt64: DeliveryJob] {
        if machine.generation == 0 { _ = send(.connected(generation: 1)) }
        _ = send(.received(Self.batch(tag: 9, jobs, redeliveries: redeliveries), generation: 1))
        return Dictionary(uniqueKeysWithValues: machine.jobs.compactMap { key, job in job.job.map { (key, $0) } })
    }

    /// Lets the held jobs fall due and answers their read; returns the POSTs.
    mutating func postAll(_ jobs: [DeliveryJob], due: Date) throws -> [HTTPPost] {
        let read = try #require(send(.tick, after: due.timeIntervalSince(now)).reads.first)
        return send(.read(batch: read.batch, Dictionary(uniqueKeysWithValues: jobs.map { ($0.deliveryID, DeliveryMachineTests.target()) })))
            .posts
    }

    /// Answers POSTs; returns the settlement they make (at once, or once gathering ends).
    mutating func settle(_ outcomes: [HTTPOutcome]) throws -> (batch: Int, items: [DeliveryMachine.Settlement]) {
        var actions = send(.outcomes(outcomes))
        if actions.settles.isEmpty { actions = send(.tick, after: 2.1) }
        return try #require(actions.settles.first)
    }

    @Test mutating func aBatchsJobsAreHeldOneByOneAndItsMessageIsAckedWithItsLastOutcome() throws {
        let due = now.addingTimeInterval(1)
        let jobs = (0..<3).map { _ in DeliveryMachineTests.job(scheduledFor: due) }
        let keys = heldBatch(jobs)
        #expect(keys.count == 3 && machine.held.count == 3)
        #expect(keys.keys.allSatisfy { $0 & DeliveryMachine.batchKeyBit != 0 }, "keys of their own, never a delivery tag")
        #expect(machine.batches[9]?.size == 3)
        // Each a job of its own: its routing key and id, for a retry, park or dead letter of one job.
        for (key, job) in keys {
            let held = try #require(machine.jobs[key])
            #expect(held.delivery.headers[DeliveryHeaders.jobs] == nil)
            #expect(held.delivery.body.isEmpty && held.delivery.messageID == nil, "made only if a message of one job is")
            #expect(DeliveryMachine.routingKey(held.delivery, held.job) == job.routingKey)
            #expect(DeliveryMachine.messageID(held.delivery, held.job) == job.deliveryID.lowercasedText)
            #expect(try DeliveryJob(body: DeliveryMachine.body(held.delivery, held.job)) == job)
        }
        let posts = try postAll(jobs, due: due)
        #expect(posts.count == 3)
        // Two answered and recorded: nothing acked; the message goes with the third.
        var settle = try settle(posts[..<2].map { DeliveryMachineTests.outcome($0.id, status: 200) })
        #expect(send(.settled(batch: settle.batch)).acks.isEmpty)
        #expect(machine.batches[9]?.left == 1)
        settle = try self.settle([DeliveryMachineTests.outcome(posts[2].id, status: 500)])
        // A failed job of a batch is retried as a message of one job.
        let retry = try #require(settle.items.first?.message)
        #expect(retry.exchange == DeliveryTopology.retryName(milliseconds: 5_000))
        #expect(retry.headers[DeliveryHeaders.attempt]?.intValue == 2)
        #expect(try DeliveryJob(body: retry.body).deliveryID == retry.messageID.flatMap(UUID.init(uuidString:)))
        #expect(!JobBatch.isBatch(retry.body))
        #expect(send(.settled(batch: settle.batch)).acks.map(\.tags) == [[9]])
        #expect(machine.jobs.isEmpty && machine.batches.isEmpty)
    }

    @Test mutating func aMalformedJobOfABatchIsDeadLetteredAloneAndTheRestGoOn() throws {
        _ = send(.connected(generation: 1))
        let due = now.addingTimeInterval(1)
        let good = DeliveryMachineTests.job(scheduledFor: due)
        let body = Array(("[" + String(decoding: good.json.serializedBytes, as: UTF8.self) + #",{"delivery_id":"nope"}]"#).utf8)
        let actions = send(.received(Self.batch(tag: 4, [good, good], body: body), generation: 1))
        #expect(actions.notes.contains { if case .malformed(let reason) = $0 { reason.contains("delivery_id") } else { false } })
        #expect(machine.held.count == 1)
        var settle = try #require(actions.settles.first)
        let dead = try #require(settle.items.first?.message)
        #expect(dead.exchange == DeliveryTopology.deadExchange && dead.body == Array(#"{"delivery_id":"nope"}"#.utf8))
        #expect(send(.settled(batch: settle.batch)).acks.isEmpty, "the good job has no outcome yet")
        let posts = try postAll([good], due: due)
        settle = try self.settle([DeliveryMachineTests.outcome(posts[0].id, status: 204)])
        #expect(send(.settled(batch: settle.batch)).acks.map(\.tags) == [[4]])
    }

    @Test mutating func aMessageThatIsNotABatchAWorkerTakesIsDeadLetteredWhole() throws {
        _ = send(.connected(generation: 1))
        let jobs = (0..<101).map { _ in DeliveryMachineTests.job(scheduledFor: now.addingTimeInterval(1)) }
        let actions = send(.received(Self.batch(tag: 5, jobs), generation: 1))
        #expect(actions.notes.contains { if case .malformed(let reason) = $0 { reason.contains("101 jobs") } else { false } })
        let settle = try #require(actions.settles.first)
        #expect(settle.items.count == 1 && settle.items[0].message?.exchange == DeliveryTopology.deadExchange)
        #expect(settle.items[0].message?.body == JobBatch.message(jobs).body)
        #expect(send(.settled(batch: settle.batch)).acks.map(\.tags) == [[5]])
    }

    @Test mutating func aStopHandsBackAWholeBatchAndReturnsTheRestOfOneThatWentOnAsJobsOfTheirOwn() throws {
        _ = send(.connected(generation: 1))
        let due = now.addingTimeInterval(1)
        let soon = (0..<3).map { _ in DeliveryMachineTests.job(scheduledFor: due) }
        let later = (0..<2).map { _ in DeliveryMachineTests.job(scheduledFor: due.addingTimeInterval(5)) }
        _ = send(.received(Self.batch(tag: 1, soon), generation: 1))
        _ = send(.received(Self.batch(tag: 2, later), generation: 1))
        // The first batch's jobs are POSTed.
        let read = try #require(send(.tick, after: due.timeIntervalSince(now)).reads.first)
        let targets = Dictionary(uniqueKeysWithValues: soon.map { ($0.deliveryID, DeliveryMachineTests.target()) })
        let posts = send(.read(batch: read.batch, targets)).posts
        #expect(posts.count == 3)
        let stop = send(.stop)
        // The second batch went nowhere: back whole, as its message.
        #expect(stop.handedBack == [2])
        #expect(!stop.finishes, "POSTs in flight finish first")
        // All of the first batch's jobs are in flight: none returned.
        #expect(stop.settles.isEmpty)
        var settle = try settle(posts.map { DeliveryMachineTests.outcome($0.id, status: 200) })
        let done = send(.settled(batch: settle.batch))
        #expect(done.acks.map(\.tags) == [[1]] && done.finishes)

        // Now a batch of which one job went out and two wait: those two return as messages
        // of one job (early: to the held queue), and the message is acked once all is done.
        var other = JobBatchTests()
        _ = other.send(.connected(generation: 1))
        let jobs = [
            DeliveryMachineTests.job(scheduledFor: other.now.addingTimeInterval(1)),
            DeliveryMachineTests.job(scheduledFor: other.now.addingTimeInterval(3)),
            DeliveryMachineTests.job(scheduledFor: other.now.addingTimeInterval(4)),
        ]
        _ = other.send(.received(Self.batch(tag: 7, jobs), generation: 1))
        let ahead = try #require(other.send(.tick, after: 1).reads.first)
        let post = try #require(other.send(.read(batch: ahead.batch, [jobs[0].deliveryID: DeliveryMachineTests.target()])).posts.first)
        let stopping = other.send(.stop)
        #expect(stopping.handedBack.isEmpty)
        let returned = try #require(stopping.settles.first)
        #expect(returned.items.count == 2)
        #expect(returned.items.allSatisfy { $0.message?.exchange == DeliveryTopology.heldExchange && $0.attempt == nil })
        #expect(
            Set(try returned.items.map { try DeliveryJob(body: #require($0.message).body).deliveryID }) == Set(jobs[1...].map(\.deliveryID))
        )
        #expect(other.send(.settled(batch: returned.batch)).acks.isEmpty, "the POST in flight is not settled")
        settle = try other.settle([DeliveryMachineTests.outcome(post.id, status: 200)])
        let end = other.send(.settled(batch: settle.batch))
        #expect(end.acks.map(\.tags) == [[7]] && end.finishes)
    }

    @Test mutating func aBatchHandedOutTwiceWithoutItsOutcomesGoesBackAsJobsOfOneAndOneJobAloneBecomesPoison() throws {
        let due = now.addingTimeInterval(1)
        let jobs = (0..<3).map { _ in DeliveryMachineTests.job(scheduledFor: due) }
        // Once more: taken apart as usual.
        #expect(heldBatch(jobs, redeliveries: 1).count == 3 && machine.held.count == 3)

        var other = JobBatchTests()
        _ = other.send(.connected(generation: 1))
        let actions = other.send(.received(Self.batch(tag: 3, jobs, redeliveries: 2), generation: 1))
        #expect(actions.notes.contains(.split(jobs: 3, redeliveries: 2)))
        #expect(other.machine.held.isEmpty && actions.reads.isEmpty, "nothing held, read or POSTed")
        let settle = try #require(actions.settles.first)
        #expect(settle.items.count == 3 && settle.items.allSatisfy { $0.attempt == nil })
        let messages = settle.items.compactMap(\.message)
        #expect(messages.map(\.exchange) == [String](repeating: DeliveryTopology.heldExchange, count: 3))
        #expect(messages.map(\.routingKey) == jobs.map(\.routingKey))
        #expect(messages.map(\.messageID) == jobs.map { $0.deliveryID.lowercasedText })
        #expect(other.send(.settled(batch: settle.batch)).acks.map(\.tags) == [[3]])
        // Each comes back alone; one that stops its workers again is poison by itself.
        let alone = AMQPDelivery(
            deliveryTag: 4, exchange: DeliveryTopology.heldExchange, routingKey: messages[0].routingKey, redelivered: true,
            body: messages[0].body, messageID: messages[0].messageID,
            headers: messages[0].headers.merging([DeliveryHeaders.deliveryCount: .int(5)]) { $1 })
        #expect(other.send(.received(alone, generation: 1)).notes.contains { if case .poison = $0 { true } else { false } })
    }

    @Test mutating func aLostConnectionForgetsItsBatches() {
        _ = heldBatch((0..<3).map { _ in DeliveryMachineTests.job(scheduledFor: now.addingTimeInterval(1)) })
        _ = send(.lost(generation: 1))
        #expect(machine.jobs.isEmpty && machine.batches.isEmpty)
        #expect(send(.tick, after: 2).isEmpty)
    }

    @Test mutating func aCopyOfAnAttemptAlreadyRecordedForARetryIsNotMadeAgain() throws {
        _ = send(.connected(generation: 1))
        let job = DeliveryMachineTests.job()
        let retrying = DeliveryStore.Target(
            state: .retrying, attempts: 1, endpoint: "http://receiver.example/hook", body: "{}", bodyBytes: 2, authToken: nil)
        // The first attempt again (its batch came back): skipped, acked, no POST.
        let read = try #require(send(.received(DeliveryMachineTests.delivery(tag: 1, job: job), generation: 1)).reads.first)
        let actions = send(.read(batch: read.batch, [job.deliveryID: retrying]))
        #expect(actions.posts.isEmpty && actions.notes.contains(.skipped(job.deliveryID, state: .retrying)))
        let skipped = try #require(actions.settles.first)
        #expect(skipped.items.count == 1 && skipped.items[0].message == nil && skipped.items[0].attempt == nil)
        #expect(send(.settled(batch: skipped.batch)).acks.map(\.tags) == [[1]])
        // The retry itself (attempt 2) goes out.
        let again = try #require(
            send(.received(DeliveryMachineTests.delivery(tag: 2, job: job, attempt: 2), generation: 1), after: 1).reads.first)
        #expect(send(.read(batch: again.batch, [job.deliveryID: retrying])).posts.count == 1)
    }
}
