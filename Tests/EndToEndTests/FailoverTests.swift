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

            var killed = Date()
            let instant = try await pipeline.fault(during: "failover", count: count) {
                _ = try runTool(failover.control, ["kill-primary"])
                killed = Date()
            }
            #expect(await webStatus() == "HTTP/1.1 503", "scheduler-web answers 503 while there is no primary")
            try await Task.sleep(for: .seconds(1))
            _ = try runTool(failover.control, ["promote"])
            let webBack = try await pipeline.eventually(timeout: 30) { await webStatus() == "HTTP/1.1 200" }
            #expect(webBack, "scheduler-web carries on against the new primary")

            let (requests, repeated) = try await pipeline.expectEachOnce("failover", count: count, after: instant)
            let primary = try await pipeline.pool.query("SELECT inet_server_port() AS port, pg_is_in_recovery() AS standby").first
            #expect(primary?["standby"] == "f", "the pool writes to the promoted standby")
            let worst =
                requests.compactMap { request in
                    request.header("X-Scheduler-Scheduled-For").flatMap(Timestamp.parse).map { request.arrived.timeIntervalSince($0) }
                }.max() ?? 0
            print(
                "PostgreSQL failover: recorded \(instant.recorded.count), in flight \(instant.inFlight.count), queued \(instant.queued) at the kill; \(requests.count) requests, \(repeated.count) repeated; latest \(worst) s after its due time, \(Date().timeIntervalSince(killed)) s after the kill; now on port \(primary?["port"] ?? "?")"
            )
        }
    }
}
