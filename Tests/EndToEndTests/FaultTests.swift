import DeliveryQueues
import Foundation
import Postgres
import SchedulerCore
import TestSupport
import Testing

@testable import AMQP

/// Faults: processes killed, the broker restarted, beats racing. Each test asserts that
/// nothing due is lost and nothing is delivered twice. `scripts/test` runs this suite on
/// its own after the others, because one test restarts the shared test broker.
@Suite("Fault tolerance", .serialized, .timeLimit(.minutes(5)))
struct FaultTests {
    @Test("kill -9 of a worker with jobs delivered, in flight and not yet taken: each delivered, repeats only of what was in flight")
    func workerKilled() async throws {
        // A prefetch of 100: the kill finds jobs the worker holds (POSTed or waiting for
        // their receiver) and jobs still queued.
        let settings = ["WORKER_PREFETCH": "100", "DELIVERY_TIMEOUT": "30", "RECEIVER_CONCURRENCY": "8"]
        try await Pipeline.run(environment: settings, worker: false) { pipeline in
            // 40 ms per answer and 8 requests at once: about 200 a second, so the kill
            // finds some jobs recorded, some held by the worker, most still queued (a
            // receiver that answers 8 requests in 40 ms keeps the whole window waiting for it,
            // none parked).
            pipeline.receiver.delay("slow", seconds: 0.04)
            let count = 3000
            try await pipeline.createDue(count, name: "slow", due: Date())
            let published = try await pipeline.eventually(timeout: 60) {
                try await pipeline.pool.query("SELECT count(*) FROM deliveries WHERE published_at IS NOT NULL").first?[0] == String(count)
            }
            try #require(published, "beat published every job")
            let first = try pipeline.launch("worker")
            let started = try await pipeline.eventually(timeout: 60) { try await pipeline.states()["delivered", default: 0] >= 200 }
            try #require(started, "the worker delivered its first jobs")
            // Hold the outcomes back for a moment (the delivery records are locked), so that
            // at the kill the worker holds jobs it POSTed whose outcome is not recorded: a
            // worker that acked before recording would lose them.
            let lock = try await pipeline.holdOutcomes()
            // Jobs not yet taken by the worker (ready in the queue), just before the kill.
            let notTaken = try pipeline.depth(DeliveryTopology.queue)
            await pipeline.kill9(first)
            #expect(first.terminationReason == .uncaughtSignal)
            // The dead worker's statements still waiting on the lock die with it.
            try await lock.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database() AND pid <> pg_backend_pid()"
            )
            try await lock.execute("ROLLBACK")
            let recorded = Set(
                try await pipeline.pool.query("SELECT id FROM deliveries WHERE state = 'delivered'").compactMap { $0["id"] })
            // Requests the worker sent just before it died may still be on their way in.
            try await Task.sleep(for: .milliseconds(500))
            let sentAtKill = Set(pipeline.receiver.keys("slow").keys)
            let inFlight = sentAtKill.subtracting(recorded)
            #expect(!recorded.isEmpty && recorded.count < count, "some jobs were recorded as delivered at the kill: \(recorded.count)")
            #expect(!inFlight.isEmpty, "some jobs were POSTed but not recorded at the kill")
            #expect(notTaken > 0, "some jobs were not taken yet: \(notTaken)")
            let second = try pipeline.launch("worker")
            let all = try await pipeline.eventually(timeout: 120) { try await pipeline.states()["delivered"] == count }
            let states = try await pipeline.states()
            #expect(all, "every occurrence delivered: \(states)")
            // Settle, then count exactly: a late duplicate must show up too.
            try await Task.sleep(for: .seconds(2))
            let keys = pipeline.receiver.keys("slow")
            #expect(keys.count == count, "every occurrence arrived: \(keys.count)")
            let repeated = Set(keys.filter { $0.value > 1 }.map(\.key))
            #expect(repeated.isSubset(of: inFlight), "only jobs in flight at the kill are sent again")
            #expect(repeated.isDisjoint(with: recorded), "a job recorded as delivered is never POSTed again")
            #expect(keys.values.allSatisfy { $0 <= 2 })
            #expect(second.isRunning)
        }
    }

    @Test(
        "RabbitMQ stopped and started with POSTs in flight and schedules falling due: nothing delivered during the outage, all delivered after; repeats only of the jobs in flight at the stop, at most once more each, with their keys"
    )
    func brokerRestart() async throws {
        try await Pipeline.run { pipeline in
            let count = 100
            try await pipeline.createDue(count, name: "before", due: Date())
            let before = try await pipeline.eventually(timeout: 20) { pipeline.receiver.keys("before").count == count }
            try #require(before)
            // Jobs in flight at the stop: POSTed, their answers 3 s away, not yet acked. The
            // worker cannot ack them once the connection is gone: it lets them go, and the
            // broker hands them out again.
            let held = 20
            pipeline.receiver.delay("inflight", seconds: 3)
            try await pipeline.createDue(held, name: "inflight", due: Date())
            let sent = try await pipeline.receiver.waitFor("inflight", count: held, timeout: 20)
            try #require(sent.count == held, "the jobs are in flight")
            let inFlight = Set(sent.compactMap { $0.header("Idempotency-Key") })
            _ = try TestBroker.rabbitmqctl(["stop_app"])
            let outageDue = Date().addingTimeInterval(1)
            try await pipeline.createDue(count, name: "outage", due: outageDue)
            // The outage's occurrences fall due and beat claims them while the broker is down.
            let claimed = try await pipeline.eventually(timeout: 30) {
                try await pipeline.pool.query(
                    "SELECT count(*) FROM deliveries d JOIN schedules s ON s.id = d.schedule_id WHERE s.endpoint LIKE '%/outage'"
                ).first?[0] == String(count)
            }
            #expect(claimed, "beat claimed the outage's occurrences while the broker was down")
            #expect(pipeline.receiver.keys("outage").isEmpty, "nothing was delivered while the broker was down")
            #expect(throws: AMQPError.self, "the broker refuses connections") {
                try AMQPConnection(url: pipeline.configuration.brokerURL, heartbeat: 0)
            }
            let restarted = Date()
            _ = try TestBroker.rabbitmqctl(["start_app"])
            let all = try await pipeline.eventually(timeout: 120) { pipeline.receiver.keys("outage").count == count }
            #expect(all, "every occurrence due during the outage arrived: \(pipeline.receiver.keys("outage").count)")
            #expect(pipeline.receiver.received("outage").allSatisfy { $0.arrived > restarted }, "none before the restart")
            let recorded = try await pipeline.eventually(timeout: 30) { try await pipeline.states()["delivered"] == 2 * count + held }
            let states = try await pipeline.states()
            #expect(recorded, "every occurrence recorded as delivered: \(states)")
            try await Task.sleep(for: .seconds(2))
            let keys = pipeline.receiver.keys("inflight")
            let repeated = Set(keys.filter { $0.value > 1 }.map(\.key))
            #expect(Set(keys.keys) == inFlight, "the jobs in flight arrived under their own keys")
            #expect(keys.values.allSatisfy { $0 <= 2 }, "a job in flight at the stop is POSTed at most once more")
            #expect(repeated.isSubset(of: inFlight))
            #expect(pipeline.receiver.received("outage").count == count, "none due during the outage twice")
            #expect(pipeline.receiver.received("before").count == count, "none delivered before the stop again")
            #expect(
                try pipeline.depth(DeliveryTopology.queue) == 0 && pipeline.unacknowledged(DeliveryTopology.queue) == 0,
                "the queue is empty")
            print("broker restart: \(repeated.count) of the \(held) jobs in flight at the stop POSTed again")
        }
    }

    @Test(
        "the broker cancels a worker's consumer mid-burst (its held queue deleted): the same worker consumes again from both queues; none lost, repeats only of what was in flight"
    )
    func consumerCancelled() async throws {
        let settings = ["WORKER_PREFETCH": "100", "DELIVERY_TIMEOUT": "30", "RECEIVER_CONCURRENCY": "8"]
        try await Pipeline.run(environment: settings, worker: false) { pipeline in
            pipeline.receiver.delay("burst", seconds: 0.04)
            let count = 1200
            try await pipeline.createDue(count, name: "burst", due: Date())
            let worker = try pipeline.launch("worker")
            let started = try await pipeline.eventually(timeout: 60) { try await pipeline.states()["delivered", default: 0] >= 200 }
            try #require(started, "the worker delivered its first jobs")
            // Outcomes held back (the records locked), so that at the cancel the worker holds
            // jobs it POSTed whose outcome is not recorded.
            let lock = try await pipeline.holdOutcomes()
            let recorded = Set(
                try await pipeline.pool.query("SELECT id FROM deliveries WHERE state = 'delivered'").compactMap { $0["id"] })
            let notTaken = try pipeline.depth(DeliveryTopology.queue)
            // Deleting the (empty) held queue makes the broker send basic.cancel to the
            // worker's consumer of it; the burst stays on the main queue.
            let vhost = String(pipeline.configuration.brokerURL.split(separator: "/").last ?? "")
            _ = try TestBroker.rabbitmqctl(["delete_queue", "-p", vhost, DeliveryTopology.heldQueue])
            let again = try await pipeline.eventually(timeout: 30) {
                try pipeline.consumers(DeliveryTopology.heldQueue) == 1 && pipeline.consumers(DeliveryTopology.queue) == 1
            }
            let sentAtCancel = Set(pipeline.receiver.keys("burst").keys)
            try await lock.execute("ROLLBACK")
            let counted = (try pipeline.consumers(DeliveryTopology.heldQueue), try pipeline.consumers(DeliveryTopology.queue))
            #expect(again, "the worker declared the held queue again and consumes from both queues: \(counted)")
            let inFlight = sentAtCancel.subtracting(recorded)
            #expect(!recorded.isEmpty && recorded.count < count, "some jobs were recorded at the cancel: \(recorded.count)")
            #expect(!inFlight.isEmpty, "some jobs were POSTed but not recorded at the cancel")
            #expect(notTaken > 0, "some jobs were not taken yet: \(notTaken)")
            let all = try await pipeline.eventually(timeout: 120) { try await pipeline.states()["delivered"] == count }
            let states = try await pipeline.states()
            #expect(all, "every occurrence delivered: \(states)")
            // Jobs published ahead of their time after the cancel (to the held queue the
            // worker declared again) arrive on time.
            let heldDue = Date().addingTimeInterval(4)
            try await pipeline.createDue(50, name: "held", due: heldDue)
            let held = try await pipeline.eventually(timeout: 30) { pipeline.receiver.keys("held").count == 50 }
            #expect(held, "the jobs published to the held queue after the cancel arrived: \(pipeline.receiver.keys("held").count)")
            let latest = pipeline.receiver.received("held").map { $0.arrived.timeIntervalSince(heldDue) }.max() ?? 0
            #expect(latest < 2, "they arrived on time, from the held queue: the last \(latest) s after its due time")
            try await Task.sleep(for: .seconds(2))
            let keys = pipeline.receiver.keys("burst")
            #expect(keys.count == count, "every occurrence arrived: \(keys.count)")
            let repeated = Set(keys.filter { $0.value > 1 }.map(\.key))
            #expect(repeated.isSubset(of: inFlight), "only jobs in flight at the cancel are sent again")
            #expect(repeated.isDisjoint(with: recorded), "a job recorded as delivered is never POSTed again")
            #expect(keys.values.allSatisfy { $0 <= 2 })
            #expect(pipeline.receiver.received("held").count == 50, "none held twice")
            #expect(worker.isRunning, "the same worker carried on")
            print("consumer cancelled: \(repeated.count) of \(inFlight.count) jobs in flight at the cancel POSTed again")
        }
    }

    @Test("two beats at once over thousands of occurrences: both claim some, each delivered exactly once")
    func twoBeats() async throws {
        try await Pipeline.run(environment: ["BEAT_BATCH_SIZE": "50", "WORKER_PREFETCH": "300"], beat: false) { pipeline in
            // Both beats run and listen before the occurrences are written, so both wake for them.
            let ports = [try ProgramTests.freePort(), try ProgramTests.freePort()]
            for port in ports { _ = try pipeline.launch("beat", extra: ["BEAT_METRICS_PORT": String(port)]) }
            let listening = try await pipeline.eventually(timeout: 30) {
                try await pipeline.pool.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'seed-scheduler listener'"
                ).first?[0] == "2"
            }
            try #require(listening, "both beats listen")
            let count = 5000
            try await pipeline.createDue(count, name: "race", due: Date().addingTimeInterval(2))
            let all = try await pipeline.eventually(timeout: 120) { pipeline.receiver.keys("race").count == count }
            #expect(all, "\(pipeline.receiver.keys("race").count) of \(count)")
            try await Task.sleep(for: .seconds(1))
            #expect(pipeline.receiver.received("race").count == count, "no occurrence twice")
            let rows = try await pipeline.pool.query("SELECT count(*) FROM deliveries").first?[0]
            #expect(rows == String(count))
            // The race was real: each beat published a share, and the shares add up.
            let published = try ports.map { try ProgramTests.scrape(port: $0).value("scheduler_occurrences_published_total") ?? 0 }
            #expect(published.allSatisfy { $0 > 0 }, "both beats claimed and published some: \(published)")
            #expect(published.reduce(0, +) == Double(count), "the beats' counts add up to the occurrences: \(published)")
        }
    }

    @Test("beat killed between recording and confirming a publish: the unpublished jobs are published again, once")
    func beatKilled() async throws {
        try await Pipeline.run(environment: ["BEAT_BATCH_SIZE": "50", "BEAT_PUBLISH_LEASE": "3"], beat: false) { pipeline in
            let count = 4000
            try await pipeline.createDue(count, name: "restart", due: Date())
            // A memory alarm makes RabbitMQ stop reading from publishers: beat records its
            // first batches and commits, but their publish stays unconfirmed, so the kill
            // lands between commit and confirm.
            _ = try TestBroker.rabbitmqctl(["set_vm_memory_high_watermark", "absolute", "1"])
            // Nothing between the alarm and its end may throw: the broker is shared.
            let first = try? pipeline.launch("beat")
            _ = try? await pipeline.eventually(timeout: 30) {
                try await pipeline.pool.query("SELECT count(*) FROM deliveries").first?[0].flatMap { Int($0) } ?? 0 >= 50
            }
            try? await Task.sleep(for: .seconds(1))
            if let first { await pipeline.kill9(first) }
            _ = try TestBroker.rabbitmqctl(["set_vm_memory_high_watermark", "0.4"])
            try #require(first != nil)
            // The kill landed between commit and confirm: recorded jobs not marked published.
            let unpublished = Set(
                try await pipeline.pool.query("SELECT id FROM deliveries WHERE published_at IS NULL").compactMap { $0["id"] })
            let recordedAtKill = try await pipeline.pool.query("SELECT count(*) FROM deliveries").first?[0].flatMap { Int($0) } ?? 0
            #expect(!unpublished.isEmpty, "some recorded jobs were not yet marked published at the kill")
            #expect(recordedAtKill < count, "some schedules were not yet claimed at the kill: \(recordedAtKill)")
            _ = try pipeline.launch("beat")
            let all = try await pipeline.eventually(timeout: 120) { try await pipeline.states()["delivered"] == count }
            let states = try await pipeline.states()
            #expect(all, "\(states)")
            try await Task.sleep(for: .seconds(4))
            let keys = pipeline.receiver.keys("restart")
            #expect(keys.count == count, "every occurrence arrived: \(keys.count) of \(count)")
            let repeated = Set(keys.filter { $0.value > 1 }.map(\.key))
            #expect(repeated.isSubset(of: unpublished), "only jobs unpublished at the kill may arrive twice: \(repeated.count)")
            let rows = try await pipeline.pool.query("SELECT count(*) FROM deliveries").first?[0]
            #expect(rows == String(count), "one delivery record per occurrence")
        }
    }

    @Test(
        "PostgreSQL restarted mid-burst: web answers 503 while it is down and recovers; every occurrence arrives once, late by no more than the outage and a few seconds"
    )
    func postgresRestarted() async throws {
        guard let pgctl = ProcessInfo.processInfo.environment["SCHEDULER_TEST_PGCTL"] else {
            throw TestSetupError("SCHEDULER_TEST_PGCTL is not set: run the tests with scripts/test")
        }
        @Sendable func control(_ verb: String) throws { _ = try runTool(pgctl, [verb]) }
        // The publish lease is left at its default (60 s): nothing may wait for it.
        // Eight requests at once, 5 ms each: the burst takes about two seconds, so the stop
        // lands in the middle of it.
        try await Pipeline.run(environment: ["BEAT_BATCH_SIZE": "100", "RECEIVER_CONCURRENCY": "8"]) { pipeline in
            pipeline.receiver.delay("pg", seconds: 0.005)
            // The scheduler-web program, as clients reach it.
            let (_, webPort) = try await WebServerTests.startWeb(pipeline)
            @Sendable func webStatus() async -> String { await WebServerTests.status(port: webPort, token: pipeline.adminToken) }
            #expect(await webStatus() == "HTTP/1.1 200")
            let count = 3000
            // All due at once: beat claims and publishes batch after batch, and PostgreSQL
            // goes away as the first arrive, while beat is in the middle of them.
            try await pipeline.createDue(count, name: "pg", due: Date().addingTimeInterval(2))
            let begun = try await pipeline.receiver.waitFor("pg", count: 1, timeout: 30)
            try #require(!begun.isEmpty, "the burst began")
            let stopped = Date()
            try control("stop")
            // The stop came mid-burst: some arrived, not all.
            let arrivedAtStop = pipeline.receiver.keys("pg").count
            #expect(arrivedAtStop > 0 && arrivedAtStop < count, "the stop came mid-burst: \(arrivedAtStop) of \(count) had arrived")
            #expect(await webStatus() == "HTTP/1.1 503", "scheduler-web answers 503 while the database is down")
            try await Task.sleep(for: .seconds(1))
            try control("start")
            let outage = Date().timeIntervalSince(stopped)
            let webBack = try await pipeline.eventually(timeout: 15) { await webStatus() == "HTTP/1.1 200" }
            #expect(webBack, "scheduler-web recovers by itself")

            let all = try await pipeline.eventually(timeout: 90) { pipeline.receiver.keys("pg").count == count }
            #expect(all, "every occurrence arrived: \(pipeline.receiver.keys("pg").count) of \(count)")
            let recorded = try await pipeline.eventually(timeout: 30) {
                (try? await pipeline.states()["delivered"]) == count
            }
            let states = (try? await pipeline.states()) ?? [:]
            #expect(recorded, "every delivery recorded as delivered: \(states)")
            if ProcessInfo.processInfo.environment["E2E_DEBUG"] != nil {
                let rows = try await pipeline.pool.query(
                    "SELECT state, published_at IS NULL AS unpublished, count(*) AS n FROM deliveries GROUP BY 1, 2")
                print("DEBUG rows: \(rows.map { "\($0["state"] ?? "") unpublished=\($0["unpublished"] ?? "") n=\($0["n"] ?? "")" })")
                print(
                    "DEBUG main ready \((try? pipeline.depth(DeliveryTopology.queue)) ?? -1), held ready \((try? pipeline.depth(DeliveryTopology.heldQueue)) ?? -1)"
                )
                print(
                    "DEBUG main unacked \((try? pipeline.unacknowledged(DeliveryTopology.queue)) ?? -1), held unacked \((try? pipeline.unacknowledged(DeliveryTopology.heldQueue)) ?? -1)"
                )
            }
            try await Task.sleep(for: .seconds(1))
            let requests = pipeline.receiver.received("pg")
            // Each occurrence POSTed once. (Repeats with the same Idempotency-Key were seen
            // here, up to a few hundred: a worker whose settlement failed after its park or
            // retry messages were confirmed published them again when it retried.)
            var idsBySchedule: [String: Set<String>] = [:]
            for request in requests {
                idsBySchedule[request.header("X-Scheduler-Schedule-Id") ?? "", default: []].insert(request.header("Idempotency-Key") ?? "")
            }
            #expect(
                idsBySchedule.count == count && idsBySchedule.values.allSatisfy { $0.count == 1 }, "no occurrence under two delivery ids")
            #expect(requests.count == count, "nothing sent twice: \(requests.count) requests for \(count) occurrences")
            if ProcessInfo.processInfo.environment["E2E_DEBUG"] != nil {
                var seconds: [Int: Int] = [:]
                for request in requests { seconds[Int(request.arrived.timeIntervalSince(stopped)), default: 0] += 1 }
                print("PostgreSQL restart: arrivals by second after the stop: \(seconds.sorted { $0.key < $1.key })")
            }
            let rows = try await pipeline.pool.query("SELECT count(*) FROM deliveries").first?[0]
            #expect(rows == String(count), "one delivery record per occurrence")
            var worst = 0.0
            for request in requests {
                guard let due = request.header("X-Scheduler-Scheduled-For").flatMap(Timestamp.parse) else { continue }
                worst = max(worst, request.arrived.timeIntervalSince(due))
            }
            // A 3,000 burst takes about 2 s to deliver here without an outage; waiting for the
            // publish lease would make it over 60 s.
            #expect(worst < outage + 8, "the latest arrived \(worst) s after its due time; the outage was \(outage) s")
        }
    }

    @Test("a POST in flight when the broker connection drops is never taken for another job's outcome on the new connection")
    func staleOutcomeAfterReconnect() async throws {
        try await Pipeline.run(environment: ["DELIVERY_TIMEOUT": "15"], worker: false) { pipeline in
            // The first job's receiver refuses it (404), but only after 5 s (time for two
            // rabbitmqctl calls on a busy machine to close the worker's connection first); the
            // second job's receiver accepts it (200) after 8 s (both within DELIVERY_TIMEOUT).
            pipeline.receiver.script("first", [404])
            pipeline.receiver.delay("first", seconds: 5)
            pipeline.receiver.delay("second", seconds: 8)
            try await pipeline.createDue(1, name: "first", due: Date())
            await pipeline.startWorker()
            _ = try await pipeline.receiver.waitFor("first", count: 1, timeout: 10)
            let vhost = try #require(URL(string: pipeline.configuration.brokerURL)?.lastPathComponent)
            // The worker's consuming connection: the only one with a consumer so far.
            // (list_channels lists every virtual host's channels: keep this test's own.)
            let channels = try TestBroker.rabbitmqctl(["list_channels", "connection", "consumer_count", "vhost"])
            var workerConnections: [String] = []
            for line in channels.split(separator: "\n") {
                let columns = line.split(separator: "\t").map(String.init)
                if columns.count == 3, columns[2] == vhost, let consumers = Int(columns[1]), consumers > 0 {
                    workerConnections.append(columns[0])
                }
            }
            try #require(workerConnections.count == 1, "\(channels)")
            // Another consumer takes the first job when the worker's connection drops, and
            // holds it, so that the next job the worker gets is a different one, with the
            // delivery tag the first job had (tags start again at 1 on a new channel).
            let holder = try AMQPConnection(url: pipeline.configuration.brokerURL, heartbeat: 0)
            defer { holder.close() }
            try holder.openChannel(1)
            try holder.consume(queue: DeliveryTopology.queue, prefetch: 1, channel: 1)
            _ = try TestBroker.rabbitmqctl(["close_connection", workerConnections[0], "fault test: connection lost"])
            let held = try holder.nextDelivery(timeout: 10)
            try #require(held != nil, "the first job came back to the queue")
            try await pipeline.createDue(1, name: "second", due: Date())
            _ = try await pipeline.receiver.waitFor("second", count: 1, timeout: 10)
            // The first POST ends (404) while the second is still in flight: it must not
            // settle the second job, which is delivered when its own answer (200) comes.
            let delivered = try await pipeline.eventually(timeout: 15) {
                try await pipeline.pool.query(
                    "SELECT count(*) FROM deliveries d JOIN schedules s ON s.id = d.schedule_id WHERE s.endpoint LIKE '%/second' AND d.state = 'delivered' AND d.last_status = 200"
                ).first?[0] == "1"
            }
            let states = try await pipeline.states()
            #expect(delivered, "the second job is delivered by its own answer: \(states)")
            #expect(states["dead"] == nil, "nothing was dead-lettered: \(states)")
            #expect(pipeline.receiver.received("second").count == 1)
            // Let the first job go: the worker POSTs it again (the receiver's 404 was scripted once).
            holder.close()
            let first = try await pipeline.eventually(timeout: 15) { try await pipeline.states()["delivered"] == 2 }
            let finalStates = try await pipeline.states()
            #expect(first, "\(finalStates)")
        }
    }
}
