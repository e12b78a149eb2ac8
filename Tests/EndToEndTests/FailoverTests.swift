import DeliveryQueues
import Foundation
import Postgres
import SchedulerCore
import SchedulerStore
import TestSupport
import Testing

/// A PostgreSQL primary and its streaming standby (synchronous: a commit returns once the
/// standby has it) that `scripts/test` starts for this test; `SCHEDULER_DATABASE` names
/// both hosts with `target_session_attrs=read-write`. One of the fault tests, so it runs
/// alone.
extension FaultTests {
    /// `SCHEDULER_TEST_FAILOVER_DATABASE`: both servers' URL without a database name or
    /// options; `SCHEDULER_TEST_FAILOVER_CTL`: `kill-primary` (kill -9 of its postmaster) and
    /// `promote` (the standby becomes the primary).
    struct Failover {
        let base: String
        let control: String

        init() throws {
            let environment = ProcessInfo.processInfo.environment
            guard let base = environment["SCHEDULER_TEST_FAILOVER_DATABASE"], let control = environment["SCHEDULER_TEST_FAILOVER_CTL"]
            else {
                throw TestSetupError("SCHEDULER_TEST_FAILOVER_DATABASE is not set: run the tests with scripts/test, which starts the pair")
            }
            self.base = base
            self.control = control
        }

        func url(database: String) -> String { "\(base)/\(database)?target_session_attrs=read-write" }

        /// A new database on the primary (streamed to the standby), migrated.
        func freshDatabase() async throws -> String {
            let name = "f_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
            let admin = try await PostgresConnection.connect(url: url(database: "postgres"), logger: TestDatabase.logger)
            try await admin.execute("CREATE DATABASE \(name)")
            let databaseURL = url(database: name)
            _ = try await Migrator(directory: TestDatabase.migrationsDirectory, logger: TestDatabase.logger).migrate(
                databaseURL: databaseURL)
            return databaseURL
        }
    }

    @Test(
        "PostgreSQL primary killed (kill -9) mid-burst and its synchronous standby promoted: web, beat and the worker carry on against the new primary; none lost, repeats only of jobs in flight at the kill, each with its key"
    )
    func postgresFailover() async throws {
        let failover = try Failover()
        let databaseURL = try await failover.freshDatabase()
        // 8 requests at once, 20 ms each: about 400 a second, so the kill finds jobs
        // recorded, jobs the worker holds and jobs still queued.
        let settings = ["BEAT_BATCH_SIZE": "100", "WORKER_PREFETCH": "100", "RECEIVER_CONCURRENCY": "8"]
        try await Pipeline.run(environment: settings, databaseURL: databaseURL) { pipeline in
            pipeline.receiver.delay("failover", seconds: 0.02)
            let (_, webPort) = try await WebServerTests.startWeb(pipeline)
            @Sendable func webStatus() async -> String { await WebServerTests.status(port: webPort, token: pipeline.adminToken) }
            #expect(await webStatus() == "HTTP/1.1 200")
            let count = 3000
            try await pipeline.createDue(count, name: "failover", due: Date().addingTimeInterval(1))
            let begun = try await pipeline.eventually(timeout: 60) { try await pipeline.states()["delivered", default: 0] >= 300 }
            try #require(begun, "the burst began")

            // The instant of the fault: what was recorded, POSTed and not yet recorded (in
            // flight), still queued (ready, counted live by the broker over AMQP).
            let notTaken = try pipeline.depth(DeliveryTopology.queue) + pipeline.depth(DeliveryTopology.heldQueue)
            let recorded = Set(try await pipeline.pool.query("SELECT id FROM deliveries WHERE state = 'delivered'").compactMap { $0["id"] })
            _ = try runTool(failover.control, ["kill-primary"])
            let killed = Date()
            try await Task.sleep(for: .milliseconds(500))
            let inFlight = Set(pipeline.receiver.keys("failover").keys).subtracting(recorded)
            #expect(recorded.count < count, "some jobs were not yet recorded at the kill: \(recorded.count)")
            #expect(!inFlight.isEmpty, "some jobs were POSTed and not recorded at the kill")
            // Not yet POSTed at the kill: queued, unpublished or waiting in the worker's window.
            let notYetSent = count - pipeline.receiver.keys("failover").count
            #expect(notYetSent > 0, "some jobs were not yet sent at the kill (\(notTaken) of them queued)")
            #expect(await webStatus() == "HTTP/1.1 503", "scheduler-web answers 503 while there is no primary")
            try await Task.sleep(for: .seconds(1))
            _ = try runTool(failover.control, ["promote"])
            let webBack = try await pipeline.eventually(timeout: 30) { await webStatus() == "HTTP/1.1 200" }
            #expect(webBack, "scheduler-web carries on against the new primary")

            let all = try await pipeline.eventually(timeout: 180) { pipeline.receiver.keys("failover").count >= count }
            let delivered = try await pipeline.eventually(timeout: 60) { (try? await pipeline.states()["delivered"]) == count }
            try await Task.sleep(for: .seconds(2))
            let states = try await pipeline.states()
            #expect(all && delivered, "every occurrence arrived and was recorded: \(pipeline.receiver.keys("failover").count), \(states)")
            let rows = try await pipeline.pool.query("SELECT count(*) FROM deliveries").first?[0]
            #expect(rows == String(count), "one delivery record per occurrence")
            let requests = pipeline.receiver.received("failover")
            var keysBySchedule: [String: Set<String>] = [:]
            for request in requests {
                keysBySchedule[request.header("X-Scheduler-Schedule-Id") ?? "", default: []].insert(request.header("Idempotency-Key") ?? "")
            }
            #expect(keysBySchedule.count == count, "every schedule's occurrence arrived")
            #expect(keysBySchedule.values.allSatisfy { $0.count == 1 }, "a repeat carries the first POST's Idempotency-Key")
            let keys = pipeline.receiver.keys("failover")
            let repeated = Set(keys.filter { $0.value > 1 }.map(\.key))
            #expect(keys.values.allSatisfy { $0 <= 2 }, "none POSTed three times")
            #expect(repeated.isDisjoint(with: recorded), "a job recorded as delivered before the kill is never POSTed again")
            #expect(repeated.isSubset(of: inFlight), "repeats only of jobs in flight at the kill: \(repeated.count) of \(inFlight.count)")
            let primary = try await pipeline.pool.query("SELECT inet_server_port() AS port, pg_is_in_recovery() AS standby").first
            #expect(primary?["standby"] == "f", "the pool writes to the promoted standby")
            let worst =
                requests.compactMap { request in
                    request.header("X-Scheduler-Scheduled-For").flatMap(Timestamp.parse).map { request.arrived.timeIntervalSince($0) }
                }.max() ?? 0
            print(
                "PostgreSQL failover: recorded \(recorded.count), in flight \(inFlight.count), queued \(notTaken) at the kill; \(requests.count) requests, \(repeated.count) repeated; latest \(worst) s after its due time, \(Date().timeIntervalSince(killed)) s after the kill; now on port \(primary?["port"] ?? "?")"
            )
        }
    }
}
