import Crypto
import DeliveryQueues
import Foundation
import SchedulerCore
import SchedulerStore
import TestSupport
import Testing

@testable import AMQP

@Suite("Delivery pipeline, end to end", .timeLimit(.minutes(5)))
struct DeliveryTests {
    @Test("an interval schedule is POSTed on time with its body and headers, signed")
    func interval() async throws {
        let secret = "whsec_" + Data("a-signing-secret-for-tests".utf8).base64EncodedString()
        try await Pipeline.run(environment: ["SIGNING_SECRET": secret]) { pipeline in
            let due = Date().addingTimeInterval(1.5)
            let id = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("interval"))","interval_definition":"2 seconds","auth_token":"secret-token","payload":{"z":1,"a":"b"},"next_send_at":"\#(Timestamp.format(due))"}"#
            )
            let requests = try await pipeline.receiver.waitFor("interval", count: 2, timeout: 15)
            try #require(requests.count >= 2)
            let first = requests[0]
            #expect(first.body == #"{"z":1,"a":"b"}"#)
            #expect(first.header("Content-Type") == "application/json")
            #expect(first.header("Authorization") == "Token secret-token")
            let deliveryID = DeliveryID.derive(scheduleID: id, scheduledFor: due).uuidString.lowercased()
            #expect(first.header("Idempotency-Key") == deliveryID)
            #expect(first.header("X-Scheduler-Schedule-Id") == id.uuidString.lowercased())
            #expect(first.header("X-Scheduler-Scheduled-For") == Timestamp.format(due))
            #expect(first.header("X-Scheduler-Attempt") == "1")
            // On time: it leaves at its due time, not before, and well within a second.
            let lateness = first.arrived.timeIntervalSince(due)
            #expect(lateness >= 0 && lateness < 1.0, "lateness \(lateness)")
            // The next run keeps the interval's cadence.
            #expect(requests[1].header("X-Scheduler-Scheduled-For") == Timestamp.format(due.addingTimeInterval(2)))

            // Standard Webhooks: the signature verifies with the secret.
            let timestamp = try #require(first.header("webhook-timestamp"))
            #expect(first.header("webhook-id") == deliveryID)
            let signed = Data("\(deliveryID).\(timestamp).\(first.body)".utf8)
            let key = SymmetricKey(data: Data("a-signing-secret-for-tests".utf8))
            let expected = "v1," + Data(HMAC<SHA256>.authenticationCode(for: signed, using: key)).base64EncodedString()
            #expect(first.header("webhook-signature") == expected)

            // The delivery is recorded.
            let delivered = try await pipeline.eventually(timeout: 5) {
                try await pipeline.deliveries(id).contains { $0.state == .delivered && $0.lastStatus == 200 && $0.attempts == 1 }
            }
            #expect(delivered)
        }
    }

    @Test("a cron schedule fires at the right minute of its time zone")
    func cronInZone() async throws {
        try await Pipeline.run { pipeline in
            // Kathmandu is UTC+5:45: if the zone were ignored, the minute would be 45 minutes off.
            let zone = TimeZone(identifier: "Asia/Kathmandu")!
            // The next minute at least 3 s away (time to create the schedule).
            let target = Date(timeIntervalSince1970: ((Date().timeIntervalSince1970 + 3) / 60).rounded(.up) * 60)
            let wall = CivilDateTime(wallSeconds: zone.wallSeconds(atUTC: Int64(target.timeIntervalSince1970)))
            let id = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("cron"))","cron_definition":"\#(wall.minute) \#(wall.hour) * * *","timezone":"Asia/Kathmandu"}"#
            )
            let expected = Date(timeIntervalSince1970: (target.timeIntervalSince1970 / 60).rounded(.down) * 60)
            let requests = try await pipeline.receiver.waitFor("cron", count: 1, timeout: 150)
            let first = try #require(requests.first)
            #expect(first.header("X-Scheduler-Scheduled-For") == Timestamp.format(expected))
            let lateness = first.arrived.timeIntervalSince(expected)
            #expect(lateness >= 0 && lateness < 1.0, "lateness \(lateness)")
            // Next run: the same wall time tomorrow.
            let (_, body) = try await pipeline.send(.get, "/api/v1/schedule/\(id.uuidString.lowercased())/")
            #expect(body?.objectValue?["next_send_at"] == .string(Timestamp.format(expected.addingTimeInterval(86_400))))
            #expect(body?.objectValue?["triggered"] == .int(1))
        }
    }

    @Test("a receiver that fails twice then succeeds gets three attempts and one success")
    func retries() async throws {
        try await Pipeline.run { pipeline in
            pipeline.receiver.script("flaky", [503, 429])
            let id = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("flaky"))","next_send_at":"\#(Timestamp.format(Date()))"}"#)
            let requests = try await pipeline.receiver.waitFor("flaky", count: 3, timeout: 20)
            #expect(requests.map { $0.header("X-Scheduler-Attempt") } == ["1", "2", "3"])
            #expect(Set(requests.map { $0.header("Idempotency-Key") }).count == 1)
            let done = try await pipeline.eventually(timeout: 5) {
                try await pipeline.deliveries(id).first.map { $0.state == .delivered && $0.attempts == 3 } ?? false
            }
            #expect(done)
            try await Task.sleep(for: .seconds(2))
            #expect(pipeline.receiver.received("flaky").count == 3, "no fourth POST")
        }
    }

    @Test(
        "a schedule whose occurrences keep failing for good is paused after SCHEDULE_PAUSE_AFTER_FAILURES in a row, with the reason in the API"
    )
    func pausedAfterFailures() async throws {
        try await Pipeline.run(environment: ["SCHEDULE_PAUSE_AFTER_FAILURES": "3"]) { pipeline in
            pipeline.receiver.script("always-gone", Array(repeating: 404, count: 100))
            let id = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("always-gone"))","interval_definition":"1 seconds"}"#)
            let paused = try await pipeline.eventually(timeout: 20) {
                let (_, body) = try await pipeline.send(.get, "/api/v1/schedule/\(id)/")
                return body?.objectValue?["enabled"] == .bool(false)
            }
            #expect(paused)
            let (_, body) = try await pipeline.send(.get, "/api/v1/schedule/\(id)/")
            #expect(
                body?.objectValue?["disabled_reason"]
                    == .string("paused: its last 3 occurrences failed for good; fix the receiver, then enable it again"))
            // Paused by the service: no user, and its history says so, with the reason.
            #expect(body?.objectValue?["paused_by"] == .null && body?.objectValue?["paused_at"] != .null)
            let (_, history) = try await pipeline.send(.get, "/api/v1/schedule/\(id)/history/")
            guard case .array(let entries)? = history?.objectValue?["results"], let newest = entries.first?.objectValue else {
                throw ReceiverError("no history: \(history?.serialized ?? "")")
            }
            #expect(newest["action"] == .string("paused") && newest["by"] == .null)
            #expect(newest["changes"]?.objectValue?["disabled_reason"]?.objectValue?["to"] == body?.objectValue?["disabled_reason"])
            let sent = pipeline.receiver.received("always-gone").count
            #expect((3...5).contains(sent), "\(sent) POSTs: the three that failed, and at most those already claimed")
            try await Task.sleep(for: .seconds(3))
            #expect(pipeline.receiver.received("always-gone").count == sent, "no POST once paused")
        }
    }

    @Test("a 404 is dead-lettered with its reason, listed in failed-tasks, and re-driven by POST")
    func deadLetters() async throws {
        try await Pipeline.run { pipeline in
            pipeline.receiver.script("gone", [404])
            let id = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("gone"))","next_send_at":"\#(Timestamp.format(Date()))"}"#)
            let dead = try await pipeline.eventually(timeout: 10) {
                let recorded = try await pipeline.deliveries(id).first?.state == .dead
                return try pipeline.depth(DeliveryTopology.deadQueue) == 1 && recorded
            }
            #expect(dead)
            #expect(pipeline.receiver.received("gone").count == 1, "a 404 is not retried")

            // The message says why.
            let connection = try AMQPConnection(url: pipeline.configuration.brokerURL, heartbeat: 0)
            try connection.openChannel(1)
            let letter = try #require(try connection.get(queue: DeliveryTopology.deadQueue, channel: 1))
            #expect(letter.headers[DeliveryHeaders.lastStatus] == .int(404))
            #expect(letter.headers[DeliveryHeaders.attempts] == .int(1))
            #expect(letter.headers[DeliveryHeaders.reason]?.stringValue?.hasPrefix("HTTP 404 after 1 attempt") == true)
            #expect(letter.routingKey == "schedule.\(id.uuidString.lowercased())")
            try connection.nack(letter.deliveryTag, requeue: true, channel: 1)
            connection.close()

            let (status, list) = try await pipeline.send(.get, "/api/v1/failed-tasks/")
            #expect(status == .ok)
            guard case .array(let items)? = list?.objectValue?["results"], let task = items.first?.objectValue else {
                throw ReceiverError("no failed task listed: \(list?.serialized ?? "")")
            }
            #expect(task.keys == ["url", "id", "schedule", "task_id", "initiated_at", "reason"])
            #expect(task["reason"]?.stringValue?.contains("404") == true)

            // Fixed receiver; re-drive.
            let (redriven, answer) = try await pipeline.send(.post, "/api/v1/failed-tasks/")
            #expect(redriven == .created)
            #expect(answer?.serialized == #"{"requeued_failed_tasks":true}"#)
            let again = try await pipeline.receiver.waitFor("gone", count: 2, timeout: 10)
            #expect(again.count == 2)
            #expect(again.last?.header("X-Scheduler-Attempt") == "1", "fresh attempts")
            #expect(again.last?.header("Idempotency-Key") == again.first?.header("Idempotency-Key"), "same delivery id")
            let delivered = try await pipeline.eventually(timeout: 5) {
                try await pipeline.deliveries(id).first?.state == .delivered
            }
            #expect(delivered)
            #expect(try pipeline.depth(DeliveryTopology.deadQueue) == 0)
        }
    }

    @Test("a malformed message is dead-lettered and the worker keeps going")
    func malformed() async throws {
        try await Pipeline.run { pipeline in
            let publisher = AMQPPublisher(
                url: pipeline.configuration.brokerURL, topology: DeliveryTopology.make(pipeline.configuration.retryPolicy),
                logger: pipeline.logger)
            try await publisher.publish([
                AMQPOutgoingMessage(exchange: DeliveryTopology.exchange, routingKey: "schedule.garbage", body: Array("{not json".utf8)),
                AMQPOutgoingMessage(
                    exchange: DeliveryTopology.exchange, routingKey: "schedule.garbage", body: Array(#"{"delivery_id":5}"#.utf8)),
            ])
            publisher.close()
            let dead = try await pipeline.eventually(timeout: 10) { try pipeline.depth(DeliveryTopology.deadQueue) == 2 }
            #expect(dead)
            let connection = try AMQPConnection(url: pipeline.configuration.brokerURL, heartbeat: 0)
            try connection.openChannel(1)
            let letter = try #require(try connection.get(queue: DeliveryTopology.deadQueue, channel: 1))
            #expect(letter.headers[DeliveryHeaders.reason]?.stringValue?.hasPrefix("malformed job") == true)
            connection.close()

            _ = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("after"))","next_send_at":"\#(Timestamp.format(Date()))"}"#)
            #expect(try await pipeline.receiver.waitFor("after", count: 1, timeout: 10).count == 1)
        }
    }

    @Test("a job queued before its schedule was disabled (or deleted) is not POSTed")
    func cancelled() async throws {
        try await Pipeline.run(worker: false) { pipeline in
            let disabled = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("disabled"))","next_send_at":"\#(Timestamp.format(Date()))"}"#)
            let deleted = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("deleted"))","next_send_at":"\#(Timestamp.format(Date()))"}"#)
            _ = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("kept"))","next_send_at":"\#(Timestamp.format(Date()))"}"#)
            let queued = try await pipeline.eventually(timeout: 10) { try pipeline.depth(DeliveryTopology.queue) == 3 }
            #expect(queued)
            #expect(
                try await pipeline.send(.patch, "/api/v1/schedule/\(disabled.uuidString.lowercased())/", json: #"{"enabled":false}"#).status
                    == .ok)
            #expect(try await pipeline.send(.delete, "/api/v1/schedule/\(deleted.uuidString.lowercased())/").status == .noContent)
            await pipeline.startWorker()
            #expect(try await pipeline.receiver.waitFor("kept", count: 1, timeout: 10).count == 1)
            try await Task.sleep(for: .seconds(1))
            #expect(pipeline.receiver.received("disabled").isEmpty)
            #expect(pipeline.receiver.received("deleted").isEmpty)
            #expect(try await pipeline.deliveries(disabled).map(\.state) == [.cancelled])
            let drained = try await pipeline.eventually(timeout: 5) { try pipeline.depth(DeliveryTopology.queue) == 0 }
            #expect(drained)
        }
    }

    @Test(
        "BEAT_LOOKAHEAD: a job is published early and held, its target read ahead; an edit or a disable until its due time counts, and it leaves on time"
    )
    func lookahead() async throws {
        let workerPort = try ProgramTests.freePort()
        try await Pipeline.run(environment: ["BEAT_LOOKAHEAD": "10s", "WORKER_METRICS_PORT": String(workerPort)]) { pipeline in
            let due = Date().addingTimeInterval(11.5)
            let edited = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("held-edited"))","payload":{"v":1},"next_send_at":"\#(Timestamp.format(due))"}"#)
            // Read ahead while held, and POSTed at its instant without a read.
            let keptID = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("held-kept"))","payload":{"v":3},"next_send_at":"\#(Timestamp.format(due))"}"#)
            let disabled = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("held-disabled"))","next_send_at":"\#(Timestamp.format(due))"}"#)
            // All are claimed and published up to 10 s before their time: the worker holds them,
            // in one to three messages (held jobs claimed in one round share one). RabbitMQ
            // counts a quorum queue's unacknowledged messages on its tick (every 5 s), so the
            // count can say so up to 5 s after the worker took them.
            let published = try await pipeline.eventually(timeout: 9) {
                let claimed =
                    try await pipeline.deliveries(edited).count + pipeline.deliveries(disabled).count + pipeline.deliveries(keptID).count
                return try claimed == 3 && pipeline.unacknowledged(DeliveryTopology.heldQueue) >= 1
                    && pipeline.depth(DeliveryTopology.heldQueue) == 0
            }
            try #require(published)
            try #require(Date() < due.addingTimeInterval(-2), "published early enough to change them before their time")
            #expect(
                try await pipeline.send(.patch, "/api/v1/schedule/\(edited.uuidString.lowercased())/", json: #"{"payload":{"v":2}}"#).status
                    == .ok)
            #expect(
                try await pipeline.send(.patch, "/api/v1/schedule/\(disabled.uuidString.lowercased())/", json: #"{"enabled":false}"#).status
                    == .ok)
            let requests = try await pipeline.receiver.waitFor("held-edited", count: 1, timeout: 10)
            let first = try #require(requests.first)
            #expect(first.body == #"{"v":2}"#, "the payload as it is at the due time")
            let lateness = first.arrived.timeIntervalSince(due)
            #expect(lateness >= 0 && lateness < 0.5, "lateness \(lateness)")
            let kept = try #require(try await pipeline.receiver.waitFor("held-kept", count: 1, timeout: 5).first)
            #expect(kept.body == #"{"v":3}"# && kept.arrived >= due)
            // The edited and the disabled were read again at their instant; the other was not.
            #expect(try ProgramTests.scrape(port: workerPort).value("scheduler_targets_read_ahead_total") == 1)
            try await Task.sleep(for: .seconds(1))
            #expect(pipeline.receiver.received("held-disabled").isEmpty)
            #expect(try await pipeline.deliveries(disabled).map(\.state) == [.cancelled])
        }
    }

    @Test(
        "jobs published ahead wait in the held queue with a window of their own: a job due now, or due before them, is not kept behind them"
    )
    func heldQueue() async throws {
        // A window of 10 (20 for held jobs): the worker holds 20 of the 50 jobs claimed 10 s
        // early, the other 30 wait in the held queue. Before the held queue, 10 filled its
        // window and the other 40 waited in the main queue in front of anything due sooner.
        try await Pipeline.run(environment: ["BEAT_LOOKAHEAD": "10s", "WORKER_PREFETCH": "10", "WORKER_HELD_WINDOW": "20"]) { pipeline in
            let due = Date().addingTimeInterval(9)
            try await pipeline.createDue(50, name: "held-burst", due: due)
            let claimed = try await pipeline.eventually(timeout: 4) { try await pipeline.states()["queued"] == 50 }
            try #require(claimed)
            try await Task.sleep(for: .seconds(1))
            // Due now: the main queue, POSTed at once.
            let created = Date()
            _ = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("due-now"))","next_send_at":"\#(Timestamp.format(created))"}"#)
            // Due before the burst, inside the lookahead: the main queue too (behind the
            // burst in the held queue it would wait for the burst's instant), held till then.
            let soon = Date().addingTimeInterval(2)
            _ = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("due-soon"))","next_send_at":"\#(Timestamp.format(soon))"}"#)
            try #require(soon < due.addingTimeInterval(-3), "created well before the burst's due time")
            let now = try #require(try await pipeline.receiver.waitFor("due-now", count: 1, timeout: 5).first)
            #expect(now.arrived.timeIntervalSince(created) < 1.5, "due now, arrived \(now.arrived.timeIntervalSince(created)) s later")
            let early = try #require(try await pipeline.receiver.waitFor("due-soon", count: 1, timeout: 5).first)
            let lateness = early.arrived.timeIntervalSince(soon)
            #expect(lateness >= 0 && lateness < 0.5, "due soon, lateness \(lateness)")
            #expect(pipeline.receiver.received("held-burst").isEmpty, "the burst is held until its time")
            let burst = try await pipeline.receiver.waitFor("held-burst", count: 50, timeout: 20)
            #expect(burst.count == 50)
            #expect(burst.allSatisfy { $0.arrived >= due }, "none POSTed before its due time")
            #expect(Set(burst.compactMap { $0.header("Idempotency-Key") }).count == 50, "each once")
        }
    }

    @Test("a burst is claimed ahead by what it takes beat at BEAT_PACE, a few schedules only the lookahead ahead; none leaves early")
    func burstLead() async throws {
        // 600 due at one instant at 100 a second: 6 s of beat's work, so beat starts 7 s
        // ahead (1 s lookahead + 6 s) instead of 1 s; 5 due 3 s later take it 0.05 s, so
        // they are claimed the lookahead ahead.
        let beatPort = try ProgramTests.freePort()
        try await Pipeline.run(environment: ["BEAT_LOOKAHEAD": "1s", "BEAT_PACE": "100", "BEAT_METRICS_PORT": String(beatPort)]) {
            pipeline in
            @Sendable func lead() throws -> Double? { try ProgramTests.scrape(port: beatPort).value("scheduler_beat_lead_seconds") }
            let due = Date().addingTimeInterval(9)
            let later = due.addingTimeInterval(3)
            try await pipeline.createDue(600, name: "burst-lead", due: due)
            try await pipeline.createDue(5, name: "after-burst", due: later)
            @Sendable func claimed(_ name: String) async throws -> (count: Int, first: Date?, last: Date?) {
                let row = try #require(
                    try await pipeline.pool.query(
                        """
                        SELECT count(*) AS n, min(d.created_at) AS first, max(d.created_at) AS last
                        FROM deliveries d JOIN schedules s ON s.id = d.schedule_id WHERE s.endpoint = $1
                        """, [pipeline.receiver.url(name)]
                    ).first)
                return (Int(row["n"] ?? "") ?? -1, row["first"].flatMap(Timestamp.parse), row["last"].flatMap(Timestamp.parse))
            }
            let announced = try await pipeline.eventually(timeout: 2) { try lead().map { abs($0 - 7) < 0.01 } == true }
            let said = try lead()
            #expect(announced, "beat says it claims the burst 7 s ahead (says \(String(describing: said)))")
            let early = try await pipeline.eventually(timeout: 6) { try await claimed("burst-lead").count == 600 }
            try #require(early, "the burst claimed whole")
            let burst = try await claimed("burst-lead")
            let claimedBy = try #require(burst.last)
            #expect(claimedBy < due.addingTimeInterval(-4), "claimed \(due.timeIntervalSince(claimedBy)) s ahead, not 1 s")
            #expect(try await claimed("after-burst").count == 0, "the few due after the burst are not claimed with it")
            let back = try await pipeline.eventually(timeout: 2) { try lead().map { abs($0 - 1) < 0.01 } == true }
            let saidAfter = try lead()
            #expect(back, "then the lookahead for the few (says \(String(describing: saidAfter)))")
            let arrived = try await pipeline.receiver.waitFor("burst-lead", count: 600, timeout: 30)
            #expect(arrived.count == 600)
            #expect(arrived.allSatisfy { $0.arrived >= due }, "none POSTed before its due time")
            #expect(Set(arrived.compactMap { $0.header("Idempotency-Key") }).count == 600, "each once")
            let few = try await pipeline.receiver.waitFor("after-burst", count: 5, timeout: 10)
            #expect(few.count == 5 && few.allSatisfy { $0.arrived >= later })
            // Published 7 s ahead, marked published by the worker's record (which sets
            // published_at with finished_at), not by beat 5 s after the confirms, before their
            // time: one row version less each.
            let marks = try #require(
                try await pipeline.pool.query(
                    """
                    SELECT count(*) FILTER (WHERE d.published_at = d.finished_at) AS by_record
                    FROM deliveries d JOIN schedules s ON s.id = d.schedule_id WHERE s.endpoint = $1
                    """, [pipeline.receiver.url("burst-lead")]
                ).first)
            let byRecord = Int(marks["by_record"] ?? "") ?? 0
            #expect(byRecord >= 540, "marked by the record: \(byRecord) of 600")
            let fewClaimed = try await claimed("after-burst")
            let firstOfFew = try #require(fewClaimed.first)
            #expect(firstOfFew > later.addingTimeInterval(-1.5), "claimed \(later.timeIntervalSince(firstOfFew)) s ahead")
        }
    }

    @Test("the worker's reads are warmed again just before a held job's due time, not only when it starts")
    func prewarm() async throws {
        try await Pipeline.run(environment: ["BEAT_LOOKAHEAD": "2s"]) { pipeline in
            let due = Date().addingTimeInterval(4)
            _ = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("prewarmed"))","next_send_at":"\#(Timestamp.format(due))"}"#)
            let requests = try await pipeline.receiver.waitFor("prewarmed", count: 1, timeout: 10)
            #expect(requests.count == 1)
            // The worker's four connections last ran the read: the warm one shortly before the
            // due time on each idle connection, the real one at the due time on one of them
            // (then the record on one). Without the warm, the last reads before the due time
            // would be those of the worker's start, seconds before it.
            let rows = try await pipeline.pool.query(
                """
                SELECT extract(epoch FROM query_start)::float8 FROM pg_stat_activity
                WHERE datname = current_database() AND pid <> pg_backend_pid()
                  AND query LIKE '%FROM unnest($1::uuid[]) AS u(id)%'
                """)
            let starts = rows.compactMap { $0[0].flatMap(Double.init) }.map { $0 - due.timeIntervalSince1970 }
            #expect(starts.contains { $0 > -1 && $0 < 0 }, "the reads' last runs, in seconds from the due time: \(starts)")
        }
    }

    @Test(
        "a job delivered soon after its publish is marked published by the worker's record alone; one nobody took is marked by beat before its lease ends, and published once"
    )
    func publishedMarks() async throws {
        // The default lease of 60 s: beat marks what it published 5 s after the confirm.
        try await Pipeline.run { pipeline in
            let count = 100
            try await pipeline.createDue(count, name: "marks", due: Date())
            let delivered = try await pipeline.eventually(timeout: 30) { try await pipeline.states()["delivered"] == count }
            try #require(delivered)
            // Past beat's marks (5 s after the confirms).
            try await Task.sleep(for: .seconds(6))
            // The worker's record sets published_at in the statement that sets finished_at
            // (the same now()); beat's mark, had it come first, would be earlier, and had it
            // written the row again after the record, later. All were delivered well within
            // the 5 s before beat's mark (this test runs in the quiet step), so the record
            // marked every one.
            let rows = try await pipeline.pool.query(
                """
                SELECT count(*) FILTER (WHERE published_at IS NULL OR published_at > finished_at) AS wrong,
                       count(*) FILTER (WHERE published_at = finished_at) AS by_record
                FROM deliveries
                """)
            #expect(rows.first?["wrong"] == "0", "every delivered job is marked published, no later than it finished")
            let byRecord = Int(rows.first?["by_record"] ?? "") ?? 0
            #expect(byRecord == count, "the worker's record marked what it delivered before beat's mark: \(byRecord) of \(count)")
            // A mark of rows already recorded writes nothing: no row gets a new version.
            let versions = "SELECT id::text, xmin::text AS version, published_at::text FROM deliveries ORDER BY id"
            let before = try await pipeline.pool.query(versions).map { [$0["id"], $0["version"], $0["published_at"]] }
            try await DeliveryStore(pool: pipeline.pool).markPublished(before.compactMap { $0[0].flatMap { UUID(text: $0) } })
            let after = try await pipeline.pool.query(versions).map { [$0["id"], $0["version"], $0["published_at"]] }
            #expect(before.count == count && after == before, "a mark writes no new version of a row already marked")
            // A mark never waits for a row another transaction holds (a worker's record): it
            // leaves it to that writer, so it cannot be half of a deadlock.
            let id = try #require(before.first?[0].flatMap { UUID(text: $0) })
            try await pipeline.pool.query(
                "UPDATE deliveries SET published_at = NULL, state = 'queued', finished_at = NULL WHERE id = $1", [id.lowercasedText])
            let store = DeliveryStore(pool: pipeline.pool)
            try await pipeline.pool.withTransaction { holder in
                try await holder.query("SELECT 1 FROM deliveries WHERE id = $1 FOR UPDATE", [id.lowercasedText])
                let started = Date()
                try await store.markPublished([id])
                #expect(Date().timeIntervalSince(started) < 2, "the mark did not wait for the lock")
                let mark = try await pipeline.pool.query("SELECT published_at FROM deliveries WHERE id = $1", [id.lowercasedText])
                #expect(mark.first?["published_at"] == nil, "a row held by another writer is skipped")
            }
            try await store.markPublished([id])
            let mark = try await pipeline.pool.query("SELECT published_at FROM deliveries WHERE id = $1", [id.lowercasedText])
            #expect(mark.first?["published_at"] != nil, "marked once free")
        }
        // A lease of 4 s: 1 s after the confirm.
        try await Pipeline.run(environment: ["BEAT_PUBLISH_LEASE": "4"], worker: false) { pipeline in
            let count = 50
            try await pipeline.createDue(count, name: "waiting", due: Date())
            let marked = try await pipeline.eventually(timeout: 10) {
                try await pipeline.pool.query("SELECT count(*) FROM deliveries WHERE published_at IS NOT NULL").first?[0] == String(count)
            }
            #expect(marked, "beat marked what it published while the jobs wait in the queue")
            // Past the lease: no beat took them as unpublished.
            try await Task.sleep(for: .seconds(6))
            #expect(try pipeline.depth(DeliveryTopology.queue) == count, "each published once")
        }
    }

    @Test("a schedule.added webhook is called through the pipeline with HOOK_AUTH_TOKEN")
    func webhook() async throws {
        try await Pipeline.run(environment: ["HOOK_AUTH_TOKEN": "hook-token"]) { pipeline in
            let (status, _) = try await pipeline.send(
                .post, "/api/v1/webhook/", json: #"{"event":"schedule.added","target":"\#(pipeline.receiver.url("hook"))"}"#)
            #expect(status == .created)
            let id = try await pipeline.createSchedule(#"{"endpoint":"\#(pipeline.receiver.url("never"))"}"#)
            let calls = try await pipeline.receiver.waitFor("hook", count: 1, timeout: 10)
            let call = try #require(calls.first)
            #expect(call.header("Authorization") == "Token hook-token")
            let body = try JSONParser.parse(call.body).objectValue
            #expect(body?.keys == ["hook", "data"])
            #expect(body?["data"]?.objectValue?["id"] == .string(id.uuidString.lowercased()))
            #expect(body?["hook"]?.objectValue?["event"] == .string("schedule.added"))
        }
    }

    @Test("after downtime, a schedule that missed several runs fires once and continues from now")
    func catchUp() async throws {
        try await Pipeline.run(beat: false) { pipeline in
            // Two and a half intervals missed; the next run is 30 s away, so that a loaded
            // machine starting beat slowly does not reach it during the test.
            let start = Date().addingTimeInterval(-150)
            let id = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("late"))","interval_definition":"60 seconds","next_send_at":"\#(Timestamp.format(start))"}"#
            )
            await pipeline.startBeat()
            let requests = try await pipeline.receiver.waitFor("late", count: 1, timeout: 10)
            #expect(requests.count == 1)
            #expect(requests.first?.header("X-Scheduler-Scheduled-For") == Timestamp.format(start))
            let (_, body) = try await pipeline.send(.get, "/api/v1/schedule/\(id.uuidString.lowercased())/")
            // start + 3 intervals is the first run after now (start + 150 s and a little).
            #expect(body?.objectValue?["next_send_at"] == .string(Timestamp.format(start.addingTimeInterval(180))))
            try await Task.sleep(for: .milliseconds(500))
            #expect(pipeline.receiver.received("late").count == 1, "missed runs are not made up")
        }
    }
}
