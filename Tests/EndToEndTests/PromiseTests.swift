import DeliveryQueues
import Foundation
import SchedulerCore
import SchedulerStore
import TestSupport
import Testing

@testable import AMQP

/// The README's promises that no other test shows, each tested as a user would check it.
/// docs/promises.md names these tests beside the promises they show.
@Suite("README promises, end to end", .timeLimit(.minutes(4)))
struct PromiseTests {
    @Test("frequency: a schedule runs that many times, then is disabled (triggered counts the runs)")
    func frequency() async throws {
        try await Pipeline.run { pipeline in
            let id = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("twice"))","interval_definition":"1 seconds","frequency":2}"#)
            _ = try await pipeline.receiver.waitFor("twice", count: 2, timeout: 10)
            try await Task.sleep(for: .seconds(2.5))
            #expect(pipeline.receiver.received("twice").count == 2, "no third run")
            let (_, body) = try await pipeline.send(.get, "/api/v1/schedule/\(id.uuidString.lowercased())/")
            #expect(body?.objectValue?["enabled"] == .bool(false))
            #expect(body?.objectValue?["triggered"]?.integerValue == 2)
        }
    }

    @Test("the body is {} when the schedule has no payload, with X-Scheduler-Delivery-Id equal to Idempotency-Key")
    func emptyBodyAndDeliveryID() async throws {
        try await Pipeline.run { pipeline in
            let due = Date()
            let id = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("bare"))","next_send_at":"\#(Timestamp.format(due))"}"#)
            let requests = try await pipeline.receiver.waitFor("bare", count: 1, timeout: 10)
            let request = try #require(requests.first)
            #expect(request.body == "{}")
            let expected = DeliveryID.derive(scheduleID: id, scheduledFor: due).uuidString.lowercased()
            #expect(request.header("X-Scheduler-Delivery-Id") == expected)
            #expect(request.header("Idempotency-Key") == expected)
            #expect(request.header("Authorization") == nil, "no token, no Authorization header")
        }
    }

    @Test("an edit reaches a job already queued: the new endpoint, payload and token are POSTed")
    func editReachesQueuedJob() async throws {
        try await Pipeline.run(worker: false) { pipeline in
            let id = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("old"))","payload":{"v":1},"auth_token":"old","next_send_at":"\#(Timestamp.format(Date()))"}"#
            )
            let queued = try await pipeline.eventually(timeout: 10) { try pipeline.depth(DeliveryTopology.queue) == 1 }
            try #require(queued)
            let (status, _) = try await pipeline.send(
                .patch, "/api/v1/schedule/\(id.uuidString.lowercased())/",
                json: #"{"endpoint":"\#(pipeline.receiver.url("new"))","payload":{"v":2},"auth_token":"new"}"#)
            #expect(status == .ok)
            await pipeline.startWorker()
            let requests = try await pipeline.receiver.waitFor("new", count: 1, timeout: 10)
            #expect(requests.first?.body == #"{"v":2}"#)
            #expect(requests.first?.header("Authorization") == "Token new")
            #expect(pipeline.receiver.received("old").isEmpty)
        }
    }

    @Test("redirects are not followed: a 302 is dead-lettered at once, and its Location gets nothing")
    func redirectsNotFollowed() async throws {
        let hostile = try HostileReceiver([:])
        defer { hostile.stop() }
        let redirecting = try HostileReceiver([
            "moved": .answer("HTTP/1.1 302 Found", headers: ["Location: \(hostile.url("target"))"])
        ])
        defer { redirecting.stop() }
        try await Pipeline.run { pipeline in
            let id = try await pipeline.createSchedule(
                #"{"endpoint":"\#(redirecting.url("moved"))","next_send_at":"\#(Timestamp.format(Date()))"}"#)
            let dead = try await pipeline.eventually(timeout: 10) { try await pipeline.deliveries(id).first?.state == .dead }
            #expect(dead)
            #expect(redirecting.count("moved") == 1, "not retried")
            #expect(hostile.count("target") == 0, "the Location was not followed")
            #expect(try await pipeline.deliveries(id).first?.lastStatus == 302)
        }
    }

    @Test("a receiver that always fails gets DELIVERY_ATTEMPTS attempts, then the job is dead with every header and in failed-tasks")
    func deadAfterAttempts() async throws {
        try await Pipeline.run(environment: ["DELIVERY_ATTEMPTS": "3", "RETRY_DELAYS": "1s"]) { pipeline in
            pipeline.receiver.script("down", [503, 503, 503, 503, 503])
            let id = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("down"))","next_send_at":"\#(Timestamp.format(Date()))"}"#)
            let dead = try await pipeline.eventually(timeout: 20) {
                try await pipeline.deliveries(id).first?.state == .dead && pipeline.depth(DeliveryTopology.deadQueue) == 1
            }
            #expect(dead)
            try await Task.sleep(for: .seconds(1.5))
            let attempts = pipeline.receiver.received("down")
            #expect(attempts.count == 3)
            #expect(attempts.map { $0.header("X-Scheduler-Attempt") } == ["1", "2", "3"])
            let record = try #require(try await pipeline.deliveries(id).first)
            #expect(record.attempts == 3 && record.lastStatus == 503)

            let connection = try AMQPConnection(url: pipeline.configuration.brokerURL, heartbeat: 0)
            defer { connection.close() }
            try connection.openChannel(1)
            let letter = try #require(try connection.get(queue: DeliveryTopology.deadQueue, channel: 1))
            #expect(letter.headers[DeliveryHeaders.reason]?.stringValue == "HTTP 503 after 3 attempts")
            #expect(letter.headers[DeliveryHeaders.lastStatus] == .int(503))
            #expect(letter.headers[DeliveryHeaders.attempts] == .int(3))
            let failedAt = try #require(letter.headers[DeliveryHeaders.failedAt]?.stringValue.flatMap(Timestamp.parse))
            #expect(abs(failedAt.timeIntervalSinceNow) < 30)
            try connection.nack(letter.deliveryTag, requeue: true, channel: 1)

            // The schedule's deliveries and the failed task, through the API.
            let (status, page) = try await pipeline.send(.get, "/api/v1/schedule/\(id.uuidString.lowercased())/deliveries/")
            #expect(status == .ok)
            guard case .array(let items)? = page?.objectValue?["results"], let delivery = items.first?.objectValue else {
                throw ReceiverError("no deliveries: \(page?.serialized ?? "")")
            }
            #expect(
                delivery.keys == [
                    "id", "schedule", "kind", "scheduled_for", "state", "attempts", "last_status", "last_error", "latency_ms",
                    "created_at", "published_at", "finished_at", "origin",
                ])
            #expect(delivery["state"] == .string("dead") && delivery["attempts"]?.integerValue == 3)
            let taskID = try #require(delivery["id"]?.stringValue)
            let (taskStatus, task) = try await pipeline.send(.get, "/api/v1/failed-tasks/\(taskID)/")
            #expect(taskStatus == .ok)
            #expect(task?.objectValue?["reason"]?.stringValue?.contains("503") == true)
            let (missing, _) = try await pipeline.send(.get, "/api/v1/failed-tasks/\(UUID().uuidString.lowercased())/")
            #expect(missing == .notFound)
        }
    }

    @Test("an idle beat is woken by NOTIFY: a schedule created for now is POSTed within a second, not at beat's next idle wake")
    func notifyWakesBeat() async throws {
        try await Pipeline.run { pipeline in
            // Beat has nothing to do and sleeps (up to 30 s without a notification).
            try await Task.sleep(for: .seconds(2))
            let due = Date().addingTimeInterval(0.3)
            _ = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("woken"))","next_send_at":"\#(Timestamp.format(due))"}"#)
            let requests = try await pipeline.receiver.waitFor("woken", count: 1, timeout: 10)
            let lateness = try #require(requests.first).arrived.timeIntervalSince(due)
            #expect(lateness >= 0 && lateness < 1, "lateness \(lateness) s")
        }
    }

    @Test("scheduler-ctl dlq retry <id> and --all, and dlq list --limit")
    func deadLetterCommands() async throws {
        try await Pipeline.run { pipeline in
            pipeline.receiver.script("gone", [404, 404, 404])
            try await pipeline.createDue(3, name: "gone", due: Date())
            let dead = try await pipeline.eventually(timeout: 15) { try pipeline.depth(DeliveryTopology.deadQueue) == 3 }
            try #require(dead)
            try await Task.sleep(for: .milliseconds(300))
            let limited = try ctl(pipeline, ["dlq", "list", "--json", "--limit", "2"])
            guard case .array(let two)? = try? JSONParser.parse(limited.output) else { throw ReceiverError(limited.output) }
            #expect(two.count == 2)
            let oneID = try #require(two.first?.objectValue?["delivery_id"]?.stringValue)

            let one = try ctl(pipeline, ["dlq", "retry", oneID])
            #expect(one.status == 0 && one.output.contains("Re-drove 1 dead letter"), "\(one.output)")
            _ = try await pipeline.receiver.waitFor("gone", count: 4, timeout: 10)
            #expect(pipeline.receiver.received("gone").last?.header("Idempotency-Key") == oneID)
            #expect(try pipeline.depth(DeliveryTopology.deadQueue) == 2)

            let all = try ctl(pipeline, ["dlq", "retry", "--all"])
            #expect(all.status == 0 && all.output.contains("Re-drove 2 dead letters."), "\(all.output)")
            let delivered = try await pipeline.eventually(timeout: 15) { try await pipeline.states()["delivered"] == 3 }
            #expect(delivered)
            #expect(try pipeline.depth(DeliveryTopology.deadQueue) == 0)
            #expect(pipeline.receiver.received("gone").count == 6, "each sent once more")
        }
    }

    @Test("scheduler-ctl queues shows jobs a worker holds as UNACKED, and --watch refreshes")
    func queues() async throws {
        try await Pipeline.run { pipeline in
            pipeline.receiver.delay("held", seconds: 4)
            try await pipeline.createDue(5, name: "held", due: Date())
            _ = try await pipeline.receiver.waitFor("held", count: 5, timeout: 10)
            let shown = try ctl(pipeline, ["queues"])
            let line = try #require(shown.output.split(separator: "\n").first { $0.hasPrefix("scheduler.deliveries ") })
            let columns = line.split(separator: " ", omittingEmptySubsequences: true)
            #expect(columns.count == 4 && columns[1] == "0" && columns[2] == "5" && columns[3] == "1", "\(shown.output)")

            // --watch prints a fresh table every interval until stopped.
            let process = Process()
            process.executableURL = productsDirectory.appendingPathComponent("scheduler-ctl")
            process.arguments = ["queues", "--watch", "--interval", "0.5"]
            process.environment = ["PATH": "/usr/bin:/bin"].merging(pipeline.environment) { $1 }
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            try await Task.sleep(for: .seconds(2.2))
            process.terminate()
            process.waitUntilExit()
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let tables = text.components(separatedBy: "QUEUE").count - 1
            #expect(tables >= 3, "\(tables) tables in 2.2 s")
        }
    }

    @Test("scheduler-ctl dlq retry killed half-way loses nothing: each dead letter is re-driven or still there")
    func redriveCrash() async throws {
        try await Pipeline.run { pipeline in
            let count = 6
            pipeline.receiver.script("gone", Array(repeating: 404, count: count))
            try await pipeline.createDue(count, name: "gone", due: Date())
            let dead = try await pipeline.eventually(timeout: 15) { try pipeline.depth(DeliveryTopology.deadQueue) == count }
            try #require(dead)
            try await Task.sleep(for: .milliseconds(300))
            // Two a second: killed after about half.
            let process = Process()
            process.executableURL = productsDirectory.appendingPathComponent("scheduler-ctl")
            process.arguments = ["dlq", "retry", "--all", "--rate", "2"]
            var environment = pipeline.environment
            environment["SECRET_KEY"] = nil
            process.environment = ["PATH": "/usr/bin:/bin"].merging(environment) { $1 }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            try await Task.sleep(for: .seconds(1.6))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            // The re-driven ones are POSTed and recorded (on a busy machine, seconds later):
            // until then one is neither delivered nor a dead letter.
            let settled = try await pipeline.eventually(timeout: 15) {
                let delivered = try await pipeline.pool.query("SELECT id FROM deliveries WHERE state = 'delivered'").count
                return try delivered + pipeline.depth(DeliveryTopology.deadQueue) >= count
            }
            #expect(settled)
            let all = Set(try await pipeline.pool.query("SELECT id FROM deliveries").compactMap { $0["id"] })
            let delivered = Set(
                try await pipeline.pool.query("SELECT id FROM deliveries WHERE state = 'delivered'").compactMap { $0["id"] })
            let listed = try ctl(pipeline, ["dlq", "list", "--json"])
            guard case .array(let letters)? = try? JSONParser.parse(listed.output) else { throw ReceiverError(listed.output) }
            let stillDead = letters.compactMap { $0.objectValue?["delivery_id"]?.stringValue }
            #expect(all.count == count)
            #expect(
                !delivered.isEmpty && !stillDead.isEmpty, "the kill landed half-way: \(delivered.count) re-driven, \(stillDead.count) left")
            #expect(Set(stillDead).count == stillDead.count, "no dead letter listed twice")
            // None lost: every id is re-driven or still dead. A kill between a republish's
            // confirm and its ack leaves that one both re-driven and still listed (the
            // re-driver's promise: at least once); at most the one in hand (one at a time).
            #expect(delivered.union(stillDead) == all, "every id re-driven or still dead")
            #expect(delivered.intersection(stillDead).count <= 1, "at most the one in hand both")
            // The re-driven ones were POSTed again, once each, with their own ids.
            let again = pipeline.receiver.received("gone").dropFirst(count).compactMap { $0.header("Idempotency-Key") }
            #expect(again.sorted() == delivered.sorted(), "each re-driven dead letter POSTed once more")
        }
    }
}
