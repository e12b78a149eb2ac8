import Foundation
import Postgres
import SchedulerCore
import SchedulerStore
import Synchronization
import Testing

/// Receivers kept apart, against real HTTP receivers: a slow one does not delay a fast one,
/// a `Retry-After` pauses its receiver, and a receiver that is down has its circuit opened
/// (its jobs wait instead of using attempts) and closed again when it comes back.
@Suite("Receiver isolation, end to end", .serialized, .timeLimit(.minutes(3)))
struct ReceiverIsolationTests {
    /// Inserts `count` one-off schedules for `endpoint`, all due at `due`.
    static func schedules(_ pipeline: Pipeline, count: Int, endpoint: String, due: Date) async throws {
        try await pipeline.pool.query(
            """
            INSERT INTO schedules (id, endpoint, next_send_at, payload)
            SELECT gen_random_uuid(), $1, $2::timestamptz, json_build_object('n', n) FROM generate_series(1, $3::int) AS n
            """, [endpoint, Timestamp.format(due), String(count)])
    }

    /// Every delivery record of schedules for `endpoint`.
    static func records(_ pipeline: Pipeline, endpoint: String) async throws -> [(state: String, attempts: Int)] {
        try await pipeline.pool.query(
            "SELECT d.state, d.attempts FROM deliveries d JOIN schedules s ON s.id = d.schedule_id WHERE s.endpoint = $1",
            [endpoint]
        ).map { ($0["state"] ?? "", Int($0["attempts"] ?? "") ?? -1) }
    }

    @Test("a slow receiver with many due jobs does not delay fast receivers on the same host or another one")
    func slowBesideFast() async throws {
        let settings = ["RECEIVER_CONCURRENCY": "4", "DELIVERY_TIMEOUT": "5", "WORKER_PREFETCH": "40"]
        try await Pipeline.run(environment: settings) { pipeline in
            let other = try await Receiver.start()
            defer { Task { await other.stop() } }
            pipeline.receiver.delay("slow", seconds: 2)
            let slow = pipeline.receiver.url("slow")
            let sameHost = other.url("fast")  // 127.0.0.1, another port
            let otherHost = other.url("fast-by-name").replacingOccurrences(of: "127.0.0.1", with: "localhost")
            let due = Date().addingTimeInterval(2)
            try await Self.schedules(pipeline, count: 60, endpoint: slow, due: due)
            try await Self.schedules(pipeline, count: 20, endpoint: sameHost, due: due)
            try await Self.schedules(pipeline, count: 20, endpoint: otherHost, due: due)

            for name in ["fast", "fast-by-name"] {
                let arrived = try await other.waitFor(name, count: 20, timeout: 20)
                #expect(arrived.count == 20, "\(name): \(arrived.count) of 20")
                let lateness = arrived.map { $0.arrived.timeIntervalSince(due) }.sorted()
                // Alone on this machine the worst is about 0.4 s (bench/run's fairness phase
                // measures the 1 s target); the test suite shares two cores with other suites,
                // so it allows 2.5 s. Without parking it was 12 s; before issue 11, 30-50 s.
                #expect((lateness.last ?? 99) < 2.5, "\(name): the fast receiver's worst lateness \(lateness.last ?? -1) s")
            }
            // The slow receiver gets every job once, four at a time at most, with no
            // spurious timeout and no attempt lost to waiting.
            let slowArrived = try await pipeline.receiver.waitFor("slow", count: 60, timeout: 60)
            #expect(slowArrived.count == 60)
            #expect(pipeline.receiver.keys("slow").values.allSatisfy { $0 == 1 }, "each job once")
            #expect(pipeline.receiver.mostAtOnce("slow") <= 4, "at most RECEIVER_CONCURRENCY at once")
            let done = try await pipeline.eventually(timeout: 10) {
                try await Self.records(pipeline, endpoint: slow).allSatisfy { $0.state == "delivered" }
            }
            let records = try await Self.records(pipeline, endpoint: slow)
            #expect(done, "\(Dictionary(grouping: records, by: \.state).mapValues(\.count))")
            #expect(records.allSatisfy { $0.attempts == 1 }, "no attempt was used by waiting")
        }
    }

    @Test("a 429 with Retry-After pauses its receiver, not only that job; waiting uses no attempt")
    func retryAfterPausesTheReceiver() async throws {
        let settings = ["RECEIVER_CONCURRENCY": "1", "RETRY_DELAYS": "1s", "WORKER_PREFETCH": "100"]
        try await Pipeline.run(environment: settings) { pipeline in
            pipeline.receiver.script("busy", [429])
            pipeline.receiver.retryAfter("busy", "3")
            let endpoint = pipeline.receiver.url("busy")
            try await Self.schedules(pipeline, count: 5, endpoint: endpoint, due: Date().addingTimeInterval(1))
            let arrived = try await pipeline.receiver.waitFor("busy", count: 6, timeout: 30)
            #expect(arrived.count == 6, "five jobs, one of them twice")
            let times = arrived.map(\.arrived).sorted()
            if times.count >= 2 {
                let gap = times[1].timeIntervalSince(times[0])
                #expect(gap >= 2.9, "nothing reached the receiver during its 3 s pause: next after \(gap) s")
            }
            let done = try await pipeline.eventually(timeout: 10) {
                try await Self.records(pipeline, endpoint: endpoint).allSatisfy { $0.state == "delivered" }
            }
            #expect(done)
            let attempts = try await Self.records(pipeline, endpoint: endpoint).map(\.attempts).sorted()
            #expect(attempts == [1, 1, 1, 1, 2], "only the job that got the 429 used a second attempt")
        }
    }

    @Test("503s halve a receiver's limit on requests in flight; good answers grow it back")
    func adaptiveConcurrency() async throws {
        let settings = ["RECEIVER_CONCURRENCY": "8", "RETRY_DELAYS": "1s", "DELIVERY_ATTEMPTS": "6"]
        try await Pipeline.run(environment: settings) { pipeline in
            let key = "http://127.0.0.1:\(pipeline.receiver.port)"
            pipeline.receiver.script("overloaded", Array(repeating: 503, count: 12))
            pipeline.receiver.delay("overloaded", seconds: 0.5)
            let endpoint = pipeline.receiver.url("overloaded")
            try await Self.schedules(pipeline, count: 60, endpoint: endpoint, due: Date().addingTimeInterval(1))
            // Workers write each receiver's limit every 2 s: watch it go down, then up.
            let seen = Mutex(Double.infinity)
            let recovered = try await pipeline.eventually(timeout: 40) {
                let row = try await pipeline.pool.query("SELECT concurrency FROM receivers WHERE receiver = $1", [key]).first
                let limit = row.flatMap { $0["concurrency"] }.flatMap(Double.init) ?? .infinity
                let lowest = seen.withLock { lowest in
                    lowest = min(lowest, limit)
                    return lowest
                }
                let done = try await Self.records(pipeline, endpoint: endpoint).allSatisfy { $0.state == "delivered" }
                return done && lowest <= 4 && limit > lowest
            }
            let lowest = seen.withLock { $0 }
            #expect(recovered, "the limit went down to \(lowest) and did not grow back")
            #expect(lowest <= 4, "the 503s halved the limit at least once: lowest \(lowest)")
            #expect(pipeline.receiver.mostAtOnce("overloaded") <= 8)
        }
    }

    @Test("a receiver that is down has its circuit opened (jobs wait, attempts stop), and closed when it is back; the operator is told")
    func downAndBack() async throws {
        // A port with nothing on it (for now).
        let placeholder = try await Receiver.start()
        let port = placeholder.port
        await placeholder.stop()
        let settings = [
            "RETRY_DELAYS": "1s", "DELIVERY_ATTEMPTS": "50", "BREAKER_OPEN_AFTER": "2", "BREAKER_MIN_FAILURES": "3",
            "BREAKER_PROBE_INTERVAL": "2", "DELIVERY_CONNECT_TIMEOUT": "1",
        ]
        try await Pipeline.run(environment: settings, worker: false) { pipeline in
            let metricsPort = try ProgramTests.freePort()
            let worker = try pipeline.launch(
                "worker", extra: ["RECEIVER_ALERT_URL": pipeline.receiver.url("alerts"), "WORKER_METRICS_PORT": String(metricsPort)])
            let endpoint = "http://127.0.0.1:\(port)/hook/back"
            try await Self.schedules(pipeline, count: 5, endpoint: endpoint, due: Date().addingTimeInterval(1))

            let opened = try await pipeline.receiver.waitFor("alerts", count: 1, timeout: 20)
            try #require(opened.count == 1, "the operator's webhook was told")
            let alert = try JSONParser.parse(opened[0].body).objectValue
            #expect(alert?["event"] == .string("receiver.opened"))
            #expect(alert?["receiver"] == .string("http://127.0.0.1:\(port)"))
            // Open: its jobs wait instead of using attempts (only a probe every 2 s). The
            // attempts made before it opened are recorded first (in batches, a moment later).
            try await Task.sleep(for: .seconds(1.5))
            let before = try await Self.records(pipeline, endpoint: endpoint).map(\.attempts).reduce(0, +)
            try await Task.sleep(for: .seconds(5))
            let after = try await Self.records(pipeline, endpoint: endpoint).map(\.attempts).reduce(0, +)
            #expect(after - before <= 4, "attempts while open: \(after - before) (five jobs retrying each second would use 25)")
            let listed = try await pipeline.pool.query("SELECT state FROM receivers WHERE receiver = $1", ["http://127.0.0.1:\(port)"])
            #expect(["open", "half-open"].contains(listed.first?["state"] ?? ""), "scheduler-ctl receivers shows it open")
            // Counted by state, with no host label.
            let open = try ProgramTests.scrape(port: metricsPort)
            let notClosed =
                (open.value("scheduler_receiver_state", ["state": "open"]) ?? 0)
                + (open.value("scheduler_receiver_state", ["state": "half-open"]) ?? 0)
            #expect(notClosed == 1, "scheduler_receiver_state counts the receiver as open")
            #expect(open.value("scheduler_receiver_transitions_total", ["to": "open"]) ?? 0 >= 1)
            #expect((open.value("scheduler_jobs_parked_total", ["reason": "open"]) ?? 0) >= 1, "its jobs wait, counted")

            // Back: a probe succeeds, the circuit closes, every job is delivered once.
            let back = try await Receiver.start(port: port)
            defer { Task { await back.stop() } }
            let delivered = try await back.waitFor("back", count: 5, timeout: 40)
            #expect(delivered.count == 5)
            #expect(back.keys("back").values.allSatisfy { $0 == 1 })
            let closed = try await pipeline.receiver.waitFor("alerts", count: 2, timeout: 10)
            #expect(closed.count == 2, "one alert when it opened, one when it closed")
            #expect(closed.last.flatMap { try? JSONParser.parse($0.body).objectValue?["event"] } == .string("receiver.closed"))
            let closedNow = try await pipeline.eventually(timeout: 5) {
                (try ProgramTests.scrape(port: metricsPort).value("scheduler_receiver_state", ["state": "closed"]) ?? 0) >= 1
            }
            #expect(closedNow, "scheduler_receiver_state counts it closed again")
            #expect(worker.isRunning)
        }
    }

    @Test("scheduler-ctl receivers lists what the workers see, and opens and closes a receiver by hand")
    func operatorCommands() async throws {
        try await Pipeline.run { pipeline in
            let key = "http://127.0.0.1:\(pipeline.receiver.port)"
            let endpoint = pipeline.receiver.url("held")
            try await Self.schedules(pipeline, count: 1, endpoint: endpoint, due: Date())
            _ = try await pipeline.receiver.waitFor("held", count: 1, timeout: 10)
            let listed = try await pipeline.eventually(timeout: 10) { try ctl(pipeline, ["receivers"]).output.contains(key) }
            #expect(listed)
            let table = try ctl(pipeline, ["receivers", "list"])
            #expect(table.status == 0)
            #expect(table.output.contains("RECEIVER") && table.output.contains("closed"), "\(table.output)")
            let json = try ctl(pipeline, ["receivers", "list", "--json"]).output.split(separator: "\n")
            let row = try #require(
                json.compactMap { try? JSONParser.parse(String($0)).objectValue }.first { $0["receiver"] == .string(key) })
            #expect(row["state"] == .string("closed"))
            if case .number(let rate)? = row["success_rate"] {
                #expect((Double(rate) ?? 0) > 0.99, "success rate \(rate)")
            } else {
                Issue.record("no success rate: \(row)")
            }

            // Held open by hand: a due job waits, without an attempt.
            let opened = try ctl(pipeline, ["receivers", "open", endpoint])
            #expect(opened.status == 0, "\(opened.output)")
            #expect(opened.output.contains(key))
            try await Task.sleep(for: .seconds(3))  // workers apply commands at their next sync
            try await Self.schedules(pipeline, count: 1, endpoint: endpoint, due: Date())
            try await Task.sleep(for: .seconds(4))
            #expect(pipeline.receiver.received("held").count == 1, "nothing is sent to a receiver held open")
            let waiting = try await Self.records(pipeline, endpoint: endpoint)
            #expect(waiting.map(\.attempts).sorted() == [0, 1], "the waiting job used no attempt")
            let shown = try ctl(pipeline, ["receivers"]).output
            #expect(shown.contains("open (by hand)"), "\(shown)")

            #expect(try ctl(pipeline, ["receivers", "close", key]).status == 0)
            let delivered = try await pipeline.receiver.waitFor("held", count: 2, timeout: 20)
            #expect(delivered.count == 2)
            #expect(try ctl(pipeline, ["receivers", "open", "ftp://nowhere"]).status != 0, "not a receiver")
        }
    }
}
