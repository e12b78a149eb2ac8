import DeliveryQueues
import Foundation
import SchedulerCore
import SchedulerStore
import TestSupport
import Testing

@testable import AMQP

/// What tenants, receivers and the broker may send, end to end: each case of the hostile
/// input report, then a check that the service still answers and still delivers on time.
@Suite("Hostile input, end to end", .timeLimit(.minutes(5)))
struct HostileInputEndToEndTests {
    /// Inserts a schedule row as it is (no validation): what a hand edit, an older
    /// version or a bound tightened since could have left in the table.
    static func insert(
        _ pipeline: Pipeline, endpoint: String, interval: String? = nil, cron: String? = nil, nextSendAt: String,
        authToken: String? = nil, payload: String? = nil, triggered: Int = 0
    ) async throws -> UUID {
        let id = UUID()
        try await pipeline.pool.query(
            """
            INSERT INTO schedules (id, endpoint, interval_definition, cron_definition, next_send_at, auth_token, payload, triggered)
            VALUES ($1, $2, $3, $4, $5::timestamptz, $6, $7::json, $8)
            """, [id.uuidString.lowercased(), endpoint, interval, cron, nextSendAt, authToken, payload, String(triggered)])
        return id
    }

    /// A schedule due shortly, through the API; returns its due time.
    static func canary(_ pipeline: Pipeline, name: String, in seconds: Double) async throws -> Date {
        let due = Date().addingTimeInterval(seconds)
        _ = try await pipeline.createSchedule(#"{"endpoint":"\#(pipeline.receiver.url(name))","next_send_at":"\#(Timestamp.format(due))"}"#)
        return due
    }

    /// The canary arrived once, within `within` seconds of its due time.
    static func expectOnTime(_ pipeline: Pipeline, name: String, due: Date, within: Double = 1.5) async throws {
        let requests = try await pipeline.receiver.waitFor(name, count: 1, timeout: 15)
        try #require(requests.count == 1, "the canary arrived \(requests.count) times")
        let lateness = requests[0].arrived.timeIntervalSince(due)
        #expect(lateness >= 0 && lateness < within, "canary lateness \(lateness) s")
    }

    @Test(
        "beat quarantines schedules it cannot compute (an overflowing interval, a 1 µs interval, a bad crontab, -infinity) and fires the rest"
    )
    func beatQuarantine() async throws {
        try await Pipeline.run { pipeline in
            let past = Timestamp.format(Date().addingTimeInterval(-60))
            let receiver = pipeline.receiver
            let overflowing = try await Self.insert(
                pipeline, endpoint: receiver.url("overflow"), interval: "106751991 days", nextSendAt: past)
            let storm = try await Self.insert(pipeline, endpoint: receiver.url("storm"), interval: "1 microseconds", nextSendAt: past)
            let badCron = try await Self.insert(pipeline, endpoint: receiver.url("badcron"), cron: "61 * * * *", nextSendAt: past)
            let negativeInfinity = try await Self.insert(
                pipeline, endpoint: receiver.url("infinity"), interval: "1 minutes", nextSendAt: "-infinity")
            // A run count at the column's maximum keeps firing (the count stays at its maximum).
            let counted = try await Self.insert(
                pipeline, endpoint: receiver.url("counted"), interval: "1 hours", nextSendAt: past, triggered: Int(Int32.max))
            let due = try await Self.canary(pipeline, name: "canary", in: 1.5)

            try await Self.expectOnTime(pipeline, name: "canary", due: due)
            _ = try await receiver.waitFor("counted", count: 1, timeout: 10)
            #expect(receiver.received("counted").count == 1)
            let (_, countedBody) = try await pipeline.send(.get, "/api/v1/schedule/\(counted.uuidString.lowercased())/")
            #expect(countedBody?.objectValue?["triggered"]?.integerValue == Int(Int32.max))
            #expect(countedBody?.objectValue?["enabled"] == .bool(true))
            for (id, name) in [(overflowing, "overflow"), (storm, "storm"), (badCron, "badcron"), (negativeInfinity, "infinity")] {
                let (status, body) = try await pipeline.send(.get, "/api/v1/schedule/\(id.uuidString.lowercased())/")
                #expect(status == .ok, "\(name): the API still reads the schedule")
                let schedule = try #require(body?.objectValue)
                #expect(schedule["enabled"] == .bool(false), "\(name) is disabled")
                let reason = try #require(schedule["disabled_reason"]?.stringValue, "\(name) says why")
                #expect(!reason.isEmpty)
                #expect(receiver.received(name).isEmpty, "\(name) was never POSTed")
            }
            let (_, storm1) = try await pipeline.send(.get, "/api/v1/schedule/\(storm.uuidString.lowercased())/")
            #expect(storm1?.objectValue?["disabled_reason"]?.stringValue?.contains("minimum") == true)
            // Enabling it again (after fixing it) clears the reason.
            let (patched, fixed) = try await pipeline.send(
                .patch, "/api/v1/schedule/\(storm.uuidString.lowercased())/", json: #"{"interval_definition":"1 hours","enabled":true}"#)
            #expect(patched == .ok)
            #expect(fixed?.objectValue?["disabled_reason"] == .null)
            #expect(fixed?.objectValue?["enabled"] == .bool(true))
        }
    }

    @Test("a next run this service cannot read, far ahead (infinity, the year 20000), leaves beat asleep until it is needed")
    func unreadableFarFuture() async throws {
        let beatPort = try ProgramTests.freePort()
        try await Pipeline.run(environment: ["BEAT_METRICS_PORT": String(beatPort)]) { pipeline in
            @Sendable func lastRound() throws -> Double? {
                try ProgramTests.scrape(port: beatPort).value("scheduler_beat_last_run_timestamp_seconds")
            }
            let infinity = try await Self.insert(
                pipeline, endpoint: pipeline.receiver.url("infinity"), interval: "1 minutes", nextSendAt: "infinity")
            let farOff = try await Self.insert(
                pipeline, endpoint: pipeline.receiver.url("far-off"), interval: "1 minutes", nextSendAt: "20000-01-01T00:00:00Z")
            // Before, beat's wake-up query failed on them after every round, and beat ran a
            // round every half second (logging the failure each time) instead of sleeping
            // until a NOTIFY or its idle wake-up (30 s).
            try await Task.sleep(for: .seconds(2))
            let before = try #require(try lastRound())
            try await Task.sleep(for: .seconds(3))
            let after = try #require(try lastRound())
            #expect(after == before, "no round in 3 s with nothing due (rounds \(after - before) s apart)")
            // Asleep, it still wakes for a schedule created for now.
            let due = try await Self.canary(pipeline, name: "canary", in: 1.5)
            try await Self.expectOnTime(pipeline, name: "canary", due: due)
            for id in [infinity, farOff] {
                let (status, body) = try await pipeline.send(.get, "/api/v1/schedule/\(id.uuidString.lowercased())/")
                #expect(status == .ok)
                #expect(body?.objectValue?["enabled"] == .bool(true), "not due: left as it is")
            }
            #expect(pipeline.receiver.received("infinity").isEmpty && pipeline.receiver.received("far-off").isEmpty)
        }
    }

    @Test(
        "hostile receivers (huge, negative, far-future and garbage Retry-After, 10 MB answer, silence, cut answers, bad status line) never stop the worker"
    )
    func hostileReceivers() async throws {
        let tenMegabytes = [UInt8](repeating: UInt8(ascii: "x"), count: 10_000_000)
        let hostile = try HostileReceivers([
            "huge-retry-after": .answer("HTTP/1.1 503 Service Unavailable", headers: ["Retry-After: 99999999999999999"]),
            "negative-retry-after": .answer("HTTP/1.1 503 Service Unavailable", headers: ["Retry-After: -5"]),
            "date-retry-after": .answer("HTTP/1.1 429 Too Many Requests", headers: ["Retry-After: Fri, 31 Dec 9999 23:59:59 GMT"]),
            "garbage-retry-after": .answer("HTTP/1.1 503 Service Unavailable", headers: ["Retry-After: soon\u{1}\u{7f}é"]),
            "ten-megabytes": .answer("HTTP/1.1 200 OK", body: tenMegabytes),
            "silence": .silence,
            "cut": .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc".utf8)),
            "bad-status": .raw(Array("HTTP/1.1 abc nonsense\r\n\r\n".utf8)),
            "not-http": .raw(Array("\u{0}\u{1}\u{2}garbage\r\n\r\n".utf8)),
        ])
        defer { hostile.stop() }
        // A Retry-After pauses its receiver for RECEIVER_MAX_PAUSE at most: one second here,
        // so that the second attempt comes within the test.
        let settings = ["DELIVERY_TIMEOUT": "2", "DELIVERY_ATTEMPTS": "2", "RETRY_DELAYS": "1s", "RECEIVER_MAX_PAUSE": "1"]
        try await Pipeline.run(environment: settings, worker: false) { pipeline in
            // The worker as the program it is: a trap would end the process.
            let worker = try pipeline.launch("worker")
            let now = Timestamp.format(Date())
            var ids: [String: UUID] = [:]
            for path in [
                "huge-retry-after", "negative-retry-after", "date-retry-after", "garbage-retry-after", "ten-megabytes", "silence", "cut",
                "bad-status", "not-http",
            ] {
                ids[path] = try await Self.insert(pipeline, endpoint: hostile.url(path), nextSendAt: now)
            }
            // Rows the API would refuse today: a header injection and a payload over the cap.
            ids["injected"] = try await Self.insert(
                pipeline, endpoint: pipeline.receiver.url("injected"), nextSendAt: now, authToken: "abc\r\nX-Injected: yes")
            ids["oversize"] = try await Self.insert(
                pipeline, endpoint: pipeline.receiver.url("oversize"), nextSendAt: now,
                payload: "\"" + String(repeating: "y", count: ScheduleLimits.standard.maximumPayloadBytes + 1) + "\"")
            let due = try await Self.canary(pipeline, name: "canary", in: 1.5)

            try await Self.expectOnTime(pipeline, name: "canary", due: due)
            // Every hostile path settles: the 10 MB answer is a delivery (its status came
            // first), the rest are dead after their two attempts, with a reason.
            let all = ids
            let settled = try await pipeline.eventually(timeout: 30) {
                for (name, id) in all {
                    let state = try await pipeline.deliveries(id).first?.state
                    if state != (name == "ten-megabytes" ? .delivered : .dead) { return false }
                }
                return true
            }
            var states: [String: String] = [:]
            for (name, id) in ids { states[name] = try await pipeline.deliveries(id).first.map { "\($0.state) \($0.lastError ?? "")" } }
            #expect(settled, "\(states)")
            #expect(worker.isRunning, "the worker is still running")
            for path in [
                "huge-retry-after", "negative-retry-after", "date-retry-after", "garbage-retry-after", "silence", "cut", "bad-status",
            ] {
                #expect(hostile.count(path) == 2, "\(path) was tried twice: \(hostile.count(path))")
            }
            #expect(pipeline.receiver.received("injected").isEmpty, "a token with a line break is never sent")
            #expect(pipeline.receiver.received("oversize").isEmpty)
            let injected = try await pipeline.deliveries(try #require(ids["injected"])).first
            #expect(injected?.lastError?.contains("auth_token") == true, "\(String(describing: injected))")
            let oversize = try await pipeline.deliveries(try #require(ids["oversize"])).first
            #expect(oversize?.lastError?.contains("MAX_PAYLOAD_BYTES") == true)
            // The API still answers, and the worker still delivers on time.
            let (status, _) = try await pipeline.send(.get, "/api/v1/schedule/?offset=9223372036854775807")
            #expect(status == .ok)
            let again = try await Self.canary(pipeline, name: "canary-after", in: 1)
            try await Self.expectOnTime(pipeline, name: "canary-after", due: again)
            #expect(worker.isRunning)
        }
    }

    @Test("a job handed out again and again without an outcome is dead-lettered as poison, not retried forever")
    func poisonJob() async throws {
        try await Pipeline.run(environment: ["MAX_REDELIVERIES": "3"], worker: false) { pipeline in
            let id = try await Self.insert(pipeline, endpoint: pipeline.receiver.url("poison"), nextSendAt: Timestamp.format(Date()))
            let published = try await pipeline.eventually(timeout: 10) { try pipeline.depth(DeliveryTopology.queue) == 1 }
            try #require(published)
            // Three consumers in turn take the job and vanish without an answer (as workers
            // killed by it would); the broker counts each hand-out.
            for _ in 0..<3 {
                let connection = try AMQPConnection(url: pipeline.configuration.brokerURL, heartbeat: 0)
                try connection.openChannel(1)
                try connection.consume(queue: DeliveryTopology.queue, prefetch: 1, channel: 1)
                let taken = try connection.nextDelivery(timeout: 5)
                try #require(taken != nil)
                connection.close()
            }
            await pipeline.startWorker()
            let dead = try await pipeline.eventually(timeout: 15) { try await pipeline.deliveries(id).first?.state == .dead }
            let record = try await pipeline.deliveries(id).first
            #expect(dead, "\(String(describing: record))")
            #expect(record?.lastError?.contains("without an outcome") == true)
            #expect(pipeline.receiver.received("poison").isEmpty)
            let inDeadLetters = try await pipeline.eventually(timeout: 5) { try pipeline.depth(DeliveryTopology.deadQueue) == 1 }
            #expect(inDeadLetters)
        }
    }
}
