import Beat
import DeliveryQueues
import Foundation
import Hummingbird
import Logging
import Postgres
import SchedulerAPI
import SchedulerCore
import SchedulerStore
import ServiceLifecycle
import Synchronization
import Telemetry
import TestSupport
import Testing
import Worker

@testable import AMQP

/// The whole system for one test: a fresh database and RabbitMQ virtual host, the API
/// (through its router, in this process), beat and a worker as processes of their own
/// (the built executables: a crash, a failed exit or a hang on SIGTERM fails the test),
/// and a receiver.
final class Pipeline: Sendable {
    let configuration: Configuration
    /// The environment the configuration was read from (for programs started as processes).
    let environment: [String: String]
    let pool: PostgresPool
    let receiver: Receiver
    let adminToken: String
    let logger: Logger
    private let processes = Mutex<[String: Process]>([:])
    /// Every program started with `launch`, and whether the test ended it itself on purpose
    /// (`kill9`): each is stopped, waited for and its exit checked when the pipeline stops.
    private let launched = Mutex<[(process: Process, name: String, killed: Bool)]>([])
    private let workers = Mutex(0)

    static let secretKey = "end-to-end-secret-key-0123456789"

    private init(
        configuration: Configuration, environment: [String: String], pool: PostgresPool, receiver: Receiver, adminToken: String,
        logger: Logger
    ) {
        self.configuration = configuration
        self.environment = environment
        self.pool = pool
        self.receiver = receiver
        self.adminToken = adminToken
        self.logger = logger
    }

    /// With a `databaseURL` the pipeline uses that (migrated) database, and leaves it; by
    /// default a fresh one, dropped at the end.
    /// With `tls`, the programs reach both servers over TLS, verifying them against the
    /// test CA (`TestTLS`); the test's own connections stay plain.
    static func run(
        environment: [String: String] = [:], databaseURL given: String? = nil, beat: Bool = true, worker: Bool = true,
        tls: Bool = false, _ body: @Sendable (Pipeline) async throws -> Void
    ) async throws {
        Telemetry.bootstrap()
        let databaseURL: String
        if let given { databaseURL = given } else { databaseURL = try await TestDatabase.fresh() }
        let brokerURL = try await TestBroker.freshURL()
        let programs =
            tls
            ? (try TestTLS.databaseURL(databaseURL), try TestTLS.brokerURL(brokerURL, query: "cacertfile=" + TestTLS.file("ca.crt")))
            : (databaseURL, brokerURL)
        let settings = [
            "SCHEDULER_DATABASE": programs.0, "BROKER_URL": programs.1, "SECRET_KEY": secretKey, "RETRY_DELAYS": "1s,2s",
            "DELIVERY_ATTEMPTS": "4", "DELIVERY_TIMEOUT": "5", "BEAT_METRICS_PORT": "0", "WORKER_METRICS_PORT": "0",
            // The receivers of these tests are on loopback, which the egress guard refuses by default.
            "EGRESS_ALLOW": "127.0.0.0/8,::1,localhost",
        ].merging(environment) { $1 }
        let configuration = try Configuration(environment: settings)
        var logger = Logger(label: "e2e")
        logger.logLevel = ProcessInfo.processInfo.environment["E2E_DEBUG"] == nil ? .error : .debug
        // Named apart from the programs' sessions (`seed-scheduler`), which tests look for.
        let pool = PostgresPool(
            url: databaseURL + (databaseURL.contains("?") ? "&" : "?") + "application_name=e2e-test", size: 4, logger: logger)
        let admin = try await UserStore(pool: pool, minter: TokenMinter(secretKey: secretKey)).issueToken(
            email: "e2e@example.org", admin: true)
        let receiver = try await Receiver.start()
        let pipeline = Pipeline(
            configuration: configuration, environment: settings, pool: pool, receiver: receiver, adminToken: admin.token, logger: logger)
        if beat { await pipeline.startBeat() }
        if worker { await pipeline.startWorker() }
        do {
            try await body(pipeline)
        } catch {
            await pipeline.stopAll()
            await Self.dropScratch(databaseURL: given == nil ? databaseURL : nil, brokerURL: brokerURL)
            throw error
        }
        await pipeline.stopAll()
        await Self.dropScratch(databaseURL: given == nil ? databaseURL : nil, brokerURL: brokerURL)
    }

    /// Drops the test's database and virtual host (its quorum queues would load the broker
    /// for every later test).
    private static func dropScratch(databaseURL: String?, brokerURL: String) async {
        do {
            if let databaseURL { try await TestDatabase.drop(databaseURL) }
            try await TestBroker.deleteVirtualHost(of: brokerURL)
        } catch {
            Issue.record("could not drop the test's database or virtual host: \(error)")
        }
    }

    /// Starts `scheduler-beat` as a process of its own (the built executable, as it runs in
    /// production), with this pipeline's settings.
    /// Returns once beat listens for changes (its LISTEN connection is open).
    func startBeat(name: String = "beat") async {
        let listening: @Sendable () async throws -> Int = { [self] in
            try await pool.query(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'seed-scheduler listener'"
            ).first?[0].flatMap { Int($0) } ?? 0
        }
        let before = (try? await listening()) ?? 0
        start(name, program: "beat")
        let ready = (try? await eventually(timeout: 30) { try await listening() > before }) ?? false
        if !ready { Issue.record("\(name) did not start listening within 30 s") }
    }

    /// Starts `scheduler-worker` as a process of its own; returns once it consumes.
    func startWorker(name: String = "worker") async {
        // Ready when the queue has a consumer for every worker this pipeline started.
        let expected = workers.withLock {
            $0 += 1
            return $0
        }
        start(name, program: "worker")
        let ready = (try? await eventually(timeout: 30) { try consumers(DeliveryTopology.queue) >= expected }) ?? false
        if !ready { Issue.record("\(name) did not start consuming within 30 s") }
    }

    private func start(_ name: String, program: String) {
        do {
            let process = try launch(program)
            processes.withLock { $0[name] = process }
        } catch {
            Issue.record("cannot start scheduler-\(program): \(error)")
        }
    }

    /// Stops one program with SIGTERM and waits for it: a program that had already died,
    /// or that exits with a failure, fails the test.
    func stop(_ name: String) async {
        guard let process = processes.withLock({ $0.removeValue(forKey: name) }) else { return }
        guard process.isRunning else {
            Issue.record("\(name) died during the test (status \(process.terminationStatus), \(process.terminationReason))")
            return
        }
        await Self.end(process, name: name)
    }

    func stopAll() async {
        for name in processes.withLock({ Array($0.keys) }) { await stop(name) }
        for entry in launched.withLock({ $0 }) where !entry.killed {
            await Self.end(entry.process, name: entry.name)
        }
        await receiver.stop()
        pool.close()
    }

    /// Ends a program the test started with `launch`: SIGTERM if it still runs, then waits
    /// for it; a program that died, or exits with anything but 0, fails the test.
    private static func end(_ process: Process, name: String) async {
        if process.isRunning {
            process.terminate()
            let deadline = Date().addingTimeInterval(45)
            while process.isRunning, Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            if process.isRunning {
                Issue.record("\(name) did not stop within 45 s of SIGTERM")
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                return
            }
        }
        if process.terminationReason != .exit || process.terminationStatus != 0 {
            Issue.record("\(name) ended with status \(process.terminationStatus) (\(process.terminationReason))")
        }
    }

    /// Starts `scheduler-<program>` as a process of its own, with this pipeline's settings.
    /// The pipeline stops it at the end (SIGTERM, waited for, exit status 0 required) unless
    /// the test killed it with `kill9`.
    /// Its standard error goes to `standardError` when given.
    func launch(_ program: String, extra: [String: String] = [:], standardError: Pipe? = nil) throws -> Process {
        let process = Process()
        process.executableURL = productsDirectory.appendingPathComponent("scheduler-\(program)")
        process.environment = ["PATH": "/usr/bin:/bin"].merging(environment.merging(extra) { $1 }) { $1 }
        process.standardOutput = FileHandle.nullDevice
        if let standardError {
            process.standardError = standardError
        } else {
            process.standardError =
                ProcessInfo.processInfo.environment["E2E_DEBUG"] == nil ? FileHandle.nullDevice : FileHandle.standardError
        }
        try process.run()
        launched.withLock { $0.append((process, "scheduler-\(program) (pid \(process.processIdentifier))", false)) }
        return process
    }

    /// `kill -9` of a program started with `launch`, waited for: the fault a test means.
    func kill9(_ process: Process) async {
        launched.withLock { entries in
            for index in entries.indices where entries[index].process === process { entries[index].killed = true }
        }
        kill(process.processIdentifier, SIGKILL)
        while process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
    }

    /// SIGTERM to a program started with `launch`, waited for (up to `timeout` seconds):
    /// true when it exited with status 0.
    func terminate(_ process: Process, within timeout: Double = 45) async -> Bool {
        process.terminate()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        return !process.isRunning && process.terminationReason == .exit && process.terminationStatus == 0
    }

    /// Creates `count` schedules due at `due` that POST to the receiver's `name`.
    func createDue(_ count: Int, name: String, due: Date) async throws {
        try await pool.query(
            "INSERT INTO schedules (id, endpoint, next_send_at) SELECT gen_random_uuid(), $1, $2 FROM generate_series(1, $3)",
            [receiver.url(name), Timestamp.format(due), String(count)])
    }

    /// Deliveries in each state.
    func states() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try await pool.query("SELECT state, count(*) AS n FROM deliveries GROUP BY state") {
            counts[row["state"] ?? ""] = Int(row["n"] ?? "0")
        }
        return counts
    }

    /// The same pipeline's API with extra settings (for behaviour chosen by configuration).
    struct Configured: Sendable {
        let pipeline: Pipeline
        let configuration: Configuration

        init(_ pipeline: Pipeline, _ extra: [String: String]) throws {
            self.pipeline = pipeline
            configuration = try Configuration(environment: pipeline.environment.merging(extra) { $1 })
        }

        func send(_ method: HTTPRequest.Method, _ uri: String, json: String? = nil) async throws -> (
            status: HTTPResponse.Status, json: JSONValue?
        ) {
            try await pipeline.send(method, uri, json: json, configuration: configuration)
        }

        func createSchedule(_ json: String) async throws -> UUID {
            let (status, body) = try await send(.post, "/api/v1/schedule/", json: json)
            guard status == .created, let id = body?.objectValue?["id"]?.stringValue.flatMap(UUID.init(uuidString:)) else {
                throw ReceiverError("create failed: \(status) \(body?.serialized ?? "")")
            }
            return id
        }
    }

    /// Calls the API as the admin.
    func api<T: Sendable>(
        configuration: Configuration? = nil, _ body: @Sendable (any TestClientProtocol) async throws -> T
    ) async throws -> T {
        let router = buildRouter(configuration: configuration ?? self.configuration, pool: pool, logger: logger)
        let application = Application(router: router, logger: logger)
        return try await application.test(.router) { client in try await body(client) }
    }

    func send(
        _ method: HTTPRequest.Method, _ uri: String, json: String? = nil, configuration: Configuration? = nil, as caller: String? = nil
    ) async throws -> (status: HTTPResponse.Status, json: JSONValue?) {
        let token = caller ?? adminToken
        return try await api(configuration: configuration) { client in
            let response = try await client.executeRequest(
                uri: uri, method: method, headers: [.authorization: "Token \(token)", .contentType: "application/json"],
                body: json.map { ByteBuffer(string: $0) })
            return (response.status, try? JSONParser.parse(String(buffer: response.body)))
        }
    }

    /// Creates a schedule through the API and returns its id.
    func createSchedule(_ json: String) async throws -> UUID {
        let (status, body) = try await send(.post, "/api/v1/schedule/", json: json)
        guard status == .created, let id = body?.objectValue?["id"]?.stringValue.flatMap(UUID.init(uuidString:)) else {
            throw ReceiverError("create failed: \(status) \(body?.serialized ?? "")")
        }
        return id
    }

    func deliveries(_ scheduleID: UUID) async throws -> [Delivery] {
        try await DeliveryStore(pool: pool).deliveries(scheduleID: scheduleID, limit: 100, offset: 0).items
    }

    /// Messages ready in a queue of this pipeline's virtual host, and its consumers (zeros
    /// while the queue is not declared).
    func counts(_ queue: String) throws -> (messages: Int, consumers: Int) {
        let connection = try AMQPConnection(url: configuration.brokerURL, heartbeat: 0)
        defer { connection.close() }
        try connection.openChannel(1)
        do {
            let counts = try connection.declareQueue(queue, passive: true, channel: 1)
            return (counts.messages, counts.consumers)
        } catch let error as AMQPError where error.code == 404 {
            return (0, 0)
        }
    }

    /// The number of messages ready in a queue of this pipeline's virtual host.
    func depth(_ queue: String) throws -> Int { try counts(queue).messages }

    /// The number of consumers of a queue of this pipeline's virtual host.
    func consumers(_ queue: String) throws -> Int { try counts(queue).consumers }

    /// Locks the delivery records (for a moment: 1.5 s before it returns), so that the
    /// worker's outcomes wait and jobs it POSTed stay unrecorded at a fault. ROLLBACK on the
    /// connection returned ends it.
    func holdOutcomes() async throws -> PostgresConnection {
        let lock = try await PostgresConnection.connect(url: configuration.databaseURL, logger: logger)
        try await lock.execute("BEGIN; LOCK TABLE deliveries IN EXCLUSIVE MODE")
        try await Task.sleep(for: .milliseconds(1500))
        return lock
    }

    /// The number of messages of a queue of this pipeline's virtual host that consumers
    /// hold unacknowledged (rabbitmqctl: AMQP does not report it).
    func unacknowledged(_ queue: String) throws -> Int {
        try TestBroker.counts(of: queue, url: configuration.brokerURL).unacked
    }

    /// What a fault found: the jobs recorded as delivered, the ones POSTed and not recorded
    /// (in flight), and how many were ready in the queues.
    struct FaultInstant: Sendable {
        var recorded: Set<String>
        var inFlight: Set<String>
        var queued: Int
    }

    /// Runs `fault` in the middle of the burst of `count` jobs POSTed to `name`, and checks
    /// that it landed where the promises are at stake: some jobs recorded, some in flight
    /// (POSTs the worker sent until it noticed the fault count too), some not yet sent.
    func fault(during name: String, count: Int, _ fault: () async throws -> Void) async throws -> FaultInstant {
        let queued = try depth(DeliveryTopology.queue) + depth(DeliveryTopology.heldQueue)
        let recorded = Set(try await pool.query("SELECT id FROM deliveries WHERE state = 'delivered'").compactMap { $0["id"] })
        try await fault()
        try await Task.sleep(for: .milliseconds(500))
        let sent = receiver.keys(name)
        let inFlight = Set(sent.keys).subtracting(recorded)
        #expect(!recorded.isEmpty && recorded.count < count, "some jobs were recorded at the fault: \(recorded.count)")
        #expect(!inFlight.isEmpty, "some jobs were POSTed and not recorded at the fault")
        // Not yet POSTed at the fault: queued, unpublished or waiting in the worker's window.
        #expect(sent.count < count, "some jobs were not yet sent at the fault (\(queued) of them queued)")
        return FaultInstant(recorded: recorded, inFlight: inFlight, queued: queued)
    }

    /// The exact count after a fault: every one of the `count` occurrences POSTed to `name`
    /// arrives and is recorded once, each schedule under one `Idempotency-Key`; repeats only
    /// of the jobs in flight at the fault, at most once more each. Returns what arrived and
    /// the keys POSTed twice.
    func expectEachOnce(
        _ name: String, count: Int, after instant: FaultInstant, timeout: Double = 180
    ) async throws -> (requests: [Receiver.Request], repeated: Set<String>) {
        let all = try await eventually(timeout: timeout) { receiver.keys(name).count >= count }
        let delivered = try await eventually(timeout: 60) { (try? await states()["delivered"]) == count }
        // Settle, then count exactly: a late repeat must show up too.
        try await Task.sleep(for: .seconds(2))
        let counts = try await states()
        #expect(all && delivered, "every occurrence arrived and was recorded: \(receiver.keys(name).count), \(counts)")
        let rows = try await pool.query("SELECT count(*) FROM deliveries").first?[0]
        #expect(rows == String(count), "one delivery record per occurrence")
        let requests = receiver.received(name)
        var keysBySchedule: [String: Set<String>] = [:]
        for request in requests {
            keysBySchedule[request.header("X-Scheduler-Schedule-Id") ?? "", default: []].insert(request.header("Idempotency-Key") ?? "")
        }
        #expect(keysBySchedule.count == count, "every schedule's occurrence arrived")
        #expect(keysBySchedule.values.allSatisfy { $0.count == 1 }, "a repeat carries the first POST's Idempotency-Key")
        let keys = receiver.keys(name)
        let repeated = Set(keys.filter { $0.value > 1 }.map(\.key))
        #expect(keys.values.allSatisfy { $0 <= 2 }, "none POSTed three times")
        #expect(repeated.isDisjoint(with: instant.recorded), "a job recorded as delivered before the fault is never POSTed again")
        #expect(
            repeated.isSubset(of: instant.inFlight),
            "repeats only of jobs in flight at the fault: \(repeated.count) of \(instant.inFlight.count)")
        return (requests, repeated)
    }

    /// Waits until `check` holds (or the time is up).
    func eventually(timeout: Double, _ check: @Sendable () async throws -> Bool) async throws -> Bool {
        try await EndToEndTests.eventually(timeout: timeout, check)
    }
}

/// Waits until `check` holds (or the time is up).
func eventually(timeout: Double, _ check: () async throws -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await check() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await check()
}
