import Foundation
import SchedulerCore
import Testing

/// Beat and worker as the programs they are (the built executables, each its own
/// process): their own metrics ports, exact counters (one registry per process, moved by
/// nothing else), their exit status, and what SIGTERM does.
@Suite("Programs as they run", .timeLimit(.minutes(3)))
struct ProgramTests {
    /// A port nothing listens on right now.
    static func freePort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0 }
        }
        guard bound else { throw ReceiverError("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// `GET http://127.0.0.1:<port>/metrics`, read strictly.
    static func scrape(port: Int) throws -> PrometheusText {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-fsS", "--max-time", "5", "http://127.0.0.1:\(port)/metrics"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ReceiverError("no metrics on port \(port)") }
        return try PrometheusText(String(decoding: data, as: UTF8.self))
    }

    /// Waits for the process to exit (up to `timeout` seconds); true when it did.
    static func exited(_ process: Process, within timeout: Double) async throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        return !process.isRunning
    }

    @Test("beat and worker serve their own /metrics, with exact counts, and stop cleanly on SIGTERM")
    func metricsAndShutdown() async throws {
        try await Pipeline.run(beat: false, worker: false) { pipeline in
            let beatPort = try Self.freePort()
            let workerPort = try Self.freePort()
            let beat = try pipeline.launch("beat", extra: ["BEAT_METRICS_PORT": String(beatPort)])
            let worker = try pipeline.launch("worker", extra: ["WORKER_METRICS_PORT": String(workerPort)])
            defer {
                if beat.isRunning { beat.terminate() }
                if worker.isRunning { worker.terminate() }
            }
            pipeline.receiver.script("metered", [503])
            _ = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("metered"))","next_send_at":"\#(Timestamp.format(Date()))"}"#)
            // A row beat must quarantine.
            try await pipeline.pool.query(
                "INSERT INTO schedules (id, endpoint, interval_definition, next_send_at) VALUES (gen_random_uuid(), $1, '1 microseconds', now())",
                [pipeline.receiver.url("storm")])
            let arrived = try await pipeline.receiver.waitFor("metered", count: 2, timeout: 20)
            #expect(arrived.count == 2, "a 503, then a success after the retry delay")
            let recorded = try await pipeline.eventually(timeout: 10) { try await pipeline.states()["delivered"] == 1 }
            #expect(recorded)
            try await Task.sleep(for: .milliseconds(500))

            let beatMetrics = try Self.scrape(port: beatPort)
            #expect(beatMetrics.value("scheduler_occurrences_published_total") == 1)
            #expect(beatMetrics.value("scheduler_schedules_quarantined_total") == 1)
            #expect(beatMetrics.value("scheduler_beat_last_run_timestamp_seconds").map { $0 > Date().timeIntervalSince1970 - 60 } == true)
            let workerMetrics = try Self.scrape(port: workerPort)
            #expect(workerMetrics.value("scheduler_delivery_attempts_total") == 2)
            #expect(workerMetrics.value("scheduler_deliveries_total", ["outcome": "retry", "status_class": "5xx"]) == 1)
            #expect(workerMetrics.value("scheduler_deliveries_total", ["outcome": "delivered", "status_class": "2xx"]) == 1)
            #expect(workerMetrics.types["scheduler_delivery_lateness_seconds"] == "histogram")
            #expect(pipeline.receiver.received("storm").isEmpty)

            // SIGTERM: both finish and exit with status 0.
            beat.terminate()
            worker.terminate()
            #expect(try await Self.exited(beat, within: 10), "beat exits on SIGTERM")
            #expect(try await Self.exited(worker, within: 40), "the worker exits on SIGTERM")
            #expect(beat.terminationReason == .exit && beat.terminationStatus == 0)
            #expect(worker.terminationReason == .exit && worker.terminationStatus == 0)
        }
    }

    @Test("on SIGTERM a worker lets the POSTs in flight finish and records them before it exits")
    func workerDrains() async throws {
        try await Pipeline.run(worker: false) { pipeline in
            let worker = try pipeline.launch("worker")
            defer { if worker.isRunning { worker.terminate() } }
            pipeline.receiver.delay("draining", seconds: 2)
            try await pipeline.createDue(3, name: "draining", due: Date())
            let started = try await pipeline.receiver.waitFor("draining", count: 3, timeout: 15)
            try #require(started.count == 3, "three POSTs in flight")
            worker.terminate()
            #expect(try await Self.exited(worker, within: 20))
            #expect(worker.terminationReason == .exit && worker.terminationStatus == 0)
            // The answers came after the SIGTERM, and their outcomes were recorded.
            let states = try await pipeline.states()
            #expect(states["delivered"] == 3, "\(states)")
            #expect(pipeline.receiver.received("draining").count == 3, "nothing sent twice")
        }
    }
}
