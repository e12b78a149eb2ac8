import AMQP
import Delivery
import Foundation
import SchedulerCore
import TestSupport
import Testing

/// Faults: processes killed, the broker restarted, beats racing. Each test asserts that
/// nothing due is lost and nothing is delivered twice. `scripts/test` runs this suite on
/// its own after the others, because one test restarts the shared test broker.
@Suite("Fault tolerance", .serialized, .timeLimit(.minutes(5)))
struct FaultTests {
    @Test("kill -9 of a worker with jobs in flight: every job is delivered, repeats only of what was in flight")
    func workerKilled() async throws {
        try await Pipeline.run(worker: false) { pipeline in
            pipeline.receiver.delay("slow", seconds: 1.5)
            let count = 40
            try await pipeline.createDue(count, name: "slow", due: Date())
            let first = try pipeline.launch("worker")
            _ = try await pipeline.receiver.waitFor("slow", count: 10, timeout: 20)
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()
            // Requests the worker sent just before it died may still be on their way in.
            try await Task.sleep(for: .milliseconds(500))
            let inFlightAtKill = Set(pipeline.receiver.keys("slow").keys)
            let second = try pipeline.launch("worker")
            defer { second.terminate() }
            let all = try await pipeline.eventually(timeout: 60) { pipeline.receiver.keys("slow").count == count }
            #expect(all, "every occurrence arrived")
            let delivered = try await pipeline.eventually(timeout: 20) { try await pipeline.states()["delivered"] == count }
            let states = try await pipeline.states()
            #expect(delivered, "\(states)")
            let repeated = pipeline.receiver.keys("slow").filter { $0.value > 1 }.map(\.key)
            #expect(Set(repeated).isSubset(of: inFlightAtKill), "only jobs in flight at the kill are sent again")
            #expect(pipeline.receiver.keys("slow").values.allSatisfy { $0 <= 2 })
        }
    }

    @Test("RabbitMQ stopped and started while schedules fall due: all delivered once")
    func brokerRestart() async throws {
        guard let control = ProcessInfo.processInfo.environment["SCHEDULER_TEST_RABBITMQCTL"] else {
            throw TestSetupError("SCHEDULER_TEST_RABBITMQCTL is not set: run the tests with scripts/test")
        }
        @Sendable func rabbitmqctl(_ command: String) throws {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: control)
            process.arguments = [command]
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
        }
        try await Pipeline.run { pipeline in
            let count = 100
            try await pipeline.createDue(count, name: "outage", due: Date().addingTimeInterval(2))
            try await pipeline.createDue(count, name: "before", due: Date())
            _ = try await pipeline.receiver.waitFor("before", count: count, timeout: 20)
            try rabbitmqctl("stop_app")
            try await Task.sleep(for: .seconds(4))
            try rabbitmqctl("start_app")
            let all = try await pipeline.eventually(timeout: 120) { pipeline.receiver.keys("outage").count == count }
            #expect(all, "every occurrence due during the outage arrived: \(pipeline.receiver.keys("outage").count)")
            try await Task.sleep(for: .seconds(1))
            #expect(pipeline.receiver.keys("outage").values.allSatisfy { $0 == 1 }, "none twice")
            #expect(pipeline.receiver.keys("before").values.allSatisfy { $0 == 1 })
            #expect(try await pipeline.states()["delivered"] == 2 * count)
        }
    }

    @Test("two beats at once over thousands of occurrences: each delivered exactly once")
    func twoBeats() async throws {
        try await Pipeline.run(environment: ["BEAT_BATCH_SIZE": "100", "WORKER_PREFETCH": "300"], beat: false) { pipeline in
            let count = 3000
            try await pipeline.createDue(count, name: "race", due: Date().addingTimeInterval(1))
            pipeline.startBeat(name: "beat-1")
            pipeline.startBeat(name: "beat-2")
            let all = try await pipeline.eventually(timeout: 120) { pipeline.receiver.keys("race").count == count }
            #expect(all, "\(pipeline.receiver.keys("race").count) of \(count)")
            try await Task.sleep(for: .seconds(1))
            #expect(pipeline.receiver.received("race").count == count, "no occurrence twice")
            let rows = try await pipeline.pool.query("SELECT count(*) FROM deliveries").first?[0]
            #expect(rows == String(count))
        }
    }

    @Test("beat killed mid-publish and restarted: every occurrence delivered once")
    func beatKilled() async throws {
        try await Pipeline.run(environment: ["BEAT_BATCH_SIZE": "100", "BEAT_PUBLISH_LEASE": "3"], beat: false) { pipeline in
            let count = 2000
            try await pipeline.createDue(count, name: "restart", due: Date())
            let first = try pipeline.launch("beat")
            _ = try await pipeline.receiver.waitFor("restart", count: 1, timeout: 20)
            kill(first.processIdentifier, SIGKILL)
            first.waitUntilExit()
            let second = try pipeline.launch("beat")
            defer { second.terminate() }
            let all = try await pipeline.eventually(timeout: 120) { pipeline.receiver.keys("restart").count == count }
            #expect(all, "\(pipeline.receiver.keys("restart").count) of \(count)")
            try await Task.sleep(for: .seconds(4))
            #expect(pipeline.receiver.received("restart").count == count, "no occurrence twice")
        }
    }

    @Test("a POST in flight when the broker connection drops is never taken for another job's outcome on the new connection")
    func staleOutcomeAfterReconnect() async throws {
        try await Pipeline.run(worker: false) { pipeline in
            // The first job's receiver refuses it (404), but only after 2 s; the second
            // job's receiver accepts it (200) after 4 s (both within DELIVERY_TIMEOUT, 5 s).
            pipeline.receiver.script("first", [404])
            pipeline.receiver.delay("first", seconds: 2)
            pipeline.receiver.delay("second", seconds: 4)
            try await pipeline.createDue(1, name: "first", due: Date())
            pipeline.startWorker()
            _ = try await pipeline.receiver.waitFor("first", count: 1, timeout: 10)
            let vhost = try #require(URL(string: pipeline.configuration.brokerURL)?.lastPathComponent)
            // The worker's consuming connection: the only one with a consumer so far.
            let channels = try rabbitmqctl(["list_channels", "-p", vhost, "connection", "consumer_count"])
            var workerConnections: [String] = []
            for line in channels.split(separator: "\n") {
                let columns = line.split(separator: "\t").map(String.init)
                if columns.count == 2, let consumers = Int(columns[1]), consumers > 0 { workerConnections.append(columns[0]) }
            }
            try #require(workerConnections.count == 1, "\(channels)")
            // Another consumer takes the first job when the worker's connection drops, and
            // holds it, so that the next job the worker gets is a different one, with the
            // delivery tag the first job had (tags start again at 1 on a new channel).
            let holder = try AMQPConnection(url: pipeline.configuration.brokerURL, heartbeat: 0)
            defer { holder.close() }
            try holder.openChannel(1)
            try holder.consume(queue: DeliveryTopology.queue, prefetch: 1, channel: 1)
            _ = try rabbitmqctl(["close_connection", workerConnections[0], "fault test: connection lost"])
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

    /// Runs the test broker's rabbitmqctl and returns its output; throws when it fails.
    func rabbitmqctl(_ arguments: [String]) throws -> String {
        guard let control = ProcessInfo.processInfo.environment["SCHEDULER_TEST_RABBITMQCTL"] else {
            throw TestSetupError("SCHEDULER_TEST_RABBITMQCTL is not set: run the tests with scripts/test")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: control)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestSetupError("rabbitmqctl \(arguments) failed") }
        return String(decoding: data, as: UTF8.self)
    }
}
