import Foundation
import SchedulerCore
import Synchronization
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

    /// What `promtool check metrics` (Prometheus' own linter, Debian's `prometheus`) says of
    /// `GET http://127.0.0.1:<port>/metrics`: its exit status and output.
    static func promtool(port: Int) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "curl -fsS --max-time 5 http://127.0.0.1:\(port)/metrics | promtool check metrics 2>&1"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
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
            // Prometheus' own linter takes both as they are (help text, counters' _total).
            for port in [beatPort, workerPort] {
                let lint = try Self.promtool(port: port)
                #expect(lint.status == 0 && lint.output.isEmpty, "promtool check metrics: \(lint.output)")
            }

            // SIGTERM: both finish and exit with status 0.
            beat.terminate()
            worker.terminate()
            #expect(try await Self.exited(beat, within: 10), "beat exits on SIGTERM")
            #expect(try await Self.exited(worker, within: 40), "the worker exits on SIGTERM")
            #expect(beat.terminationReason == .exit && beat.terminationStatus == 0)
            #expect(worker.terminationReason == .exit && worker.terminationStatus == 0)
        }
    }

    @Test(
        "probes without a token: /livez and /readyz on beat's and worker's metrics ports, ready once both servers answer, 503 naming the server that does not; scheduler-ctl probe exits 0 or 1 accordingly"
    )
    func probes() async throws {
        try await Pipeline.run(beat: false, worker: false) { pipeline in
            let (beatPort, workerPort) = (try Self.freePort(), try Self.freePort())
            _ = try pipeline.launch("beat", extra: ["BEAT_METRICS_PORT": String(beatPort)])
            _ = try pipeline.launch("worker", extra: ["WORKER_METRICS_PORT": String(workerPort)])
            let ready = try await pipeline.eventually(timeout: 30) {
                try ctl(pipeline, ["probe", "http://127.0.0.1:\(beatPort)/readyz"]).status == 0
                    && ctl(pipeline, ["probe", "http://127.0.0.1:\(workerPort)/readyz"]).status == 0
            }
            #expect(ready, "beat and worker are ready once connected")
            for port in [beatPort, workerPort] {
                let probe = try ctl(pipeline, ["probe", "http://127.0.0.1:\(port)/readyz"])
                #expect(probe.output == #"200 {"ready":true,"checks":{"broker":"ok","database":"ok"}}"# + "\n", "\(probe.output)")
                #expect(try ctl(pipeline, ["probe", "http://127.0.0.1:\(port)/livez"]).output == #"200 {"live":true}"# + "\n")
            }

            // A worker whose broker does not answer, a beat whose database does not: live,
            // not ready, the failing server named.
            let (lostWorker, lostBeat) = (try Self.freePort(), try Self.freePort())
            let nobody = try Self.freePort()
            _ = try pipeline.launch(
                "worker", extra: ["WORKER_METRICS_PORT": String(lostWorker), "BROKER_URL": "amqp://guest:guest@127.0.0.1:\(nobody)/%2f"])
            _ = try pipeline.launch(
                "beat", extra: ["BEAT_METRICS_PORT": String(lostBeat), "SCHEDULER_DATABASE": "postgres://postgres@127.0.0.1:\(nobody)/x"])
            let live = try await pipeline.eventually(timeout: 15) {
                try ctl(pipeline, ["probe", "http://127.0.0.1:\(lostWorker)/livez"]).status == 0
                    && ctl(pipeline, ["probe", "http://127.0.0.1:\(lostBeat)/livez"]).status == 0
            }
            #expect(live, "both answer /livez")
            try await Task.sleep(for: .seconds(2))
            let worker = try ctl(pipeline, ["probe", "http://127.0.0.1:\(lostWorker)/readyz"])
            #expect(worker.status == 1 && worker.output.contains("answered 503"), "\(worker.output)")
            #expect(worker.output.contains(#""ready":false"#) && !worker.output.contains(#""broker":"ok""#), "\(worker.output)")
            let beat = try ctl(pipeline, ["probe", "http://127.0.0.1:\(lostBeat)/readyz"])
            #expect(beat.status == 1 && beat.output.contains(#""database":"unreachable""#), "\(beat.output)")
            #expect(!beat.output.contains("127.0.0.1:\(nobody)"), "no host in an unauthenticated answer")
            let none = try ctl(pipeline, ["probe", "http://127.0.0.1:\(nobody)/readyz", "--timeout", "2"])
            #expect(none.status == 1 && none.output.contains("no answer"), "\(none.output)")
        }
    }

    @Test(
        "LOG_FORMAT=json: one JSON object a line with time, level, logger and message, metadata under its own keys; LOG_LEVEL bounds what is written"
    )
    func jsonLogs() async throws {
        try await Pipeline.run(beat: false, worker: false) { pipeline in
            pipeline.receiver.script("gone", [404])
            _ = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("gone"))","next_send_at":"\#(Timestamp.format(Date()))"}"#)
            // Each program's standard error, whole lines appended as they come.
            let lines = Mutex<[UInt8]>([])
            let outputs = [Pipe(), Pipe()]
            for output in outputs {
                let pending = Mutex<[UInt8]>([])
                output.fileHandleForReading.readabilityHandler = { handle in
                    let data = handle.availableData
                    pending.withLock { pending in
                        pending.append(contentsOf: data)
                        guard let end = pending.lastIndex(of: 0x0A) else { return }
                        lines.withLock { $0.append(contentsOf: pending[...end]) }
                        pending.removeSubrange(...end)
                    }
                }
            }
            defer { for output in outputs { output.fileHandleForReading.readabilityHandler = nil } }
            _ = try pipeline.launch("beat", extra: ["LOG_FORMAT": "json", "LOG_LEVEL": "warning"], standardError: outputs[0])
            _ = try pipeline.launch("worker", extra: ["LOG_FORMAT": "json", "LOG_LEVEL": "warning"], standardError: outputs[1])
            let dead = try await pipeline.eventually(timeout: 20) { try await pipeline.states()["dead"] == 1 }
            #expect(dead)
            let id = try #require(try await pipeline.pool.query("SELECT id FROM deliveries").first?["id"])
            let logged = try await pipeline.eventually(timeout: 10) {
                lines.withLock { String(decoding: $0, as: UTF8.self) }.contains(id)
            }
            #expect(logged, "the dead letter is logged with its delivery id")
            let text = lines.withLock { String(decoding: $0, as: UTF8.self) }
            var records: [JSONObject] = []
            for line in text.split(separator: "\n") {
                guard case .object(let object)? = try? JSONParser.parse(Array(line.utf8)) else {
                    Issue.record("not one JSON object: \(line)")
                    continue
                }
                records.append(object)
            }
            #expect(!records.isEmpty)
            for record in records {
                #expect(record.keys.prefix(4) == ["time", "level", "logger", "message"], "\(record.keys)")
                #expect(["warning", "error", "critical"].contains(record["level"]?.stringValue ?? ""), "LOG_LEVEL=warning: \(record)")
                #expect(record["time"]?.stringValue.flatMap(Timestamp.parse) != nil)
            }
            // Ids are logged as the API shows them (lowercase), so a search for one finds both.
            let failure = records.first { $0["delivery.id"]?.stringValue == id }
            #expect(failure?["message"]?.stringValue == "delivery failed for good")
            #expect(failure?["logger"]?.stringValue == "scheduler-worker")
            #expect(failure?["reason"]?.stringValue?.isEmpty == false)
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
