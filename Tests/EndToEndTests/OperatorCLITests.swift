import DeliveryQueues
import Foundation
import SchedulerCore
import TestSupport
import Testing

/// `scheduler-ctl` run as an operator would, against this pipeline's database and broker.
func ctl(
    _ pipeline: Pipeline, _ arguments: [String], input: String = "", withSecret: Bool = false
) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = productsDirectory.appendingPathComponent("scheduler-ctl")
    process.arguments = arguments
    var environment = pipeline.environment
    if !withSecret { environment["SECRET_KEY"] = nil }  // only the token commands need it
    process.environment = ["PATH": "/usr/bin:/bin"].merging(environment) { $1 }
    let output = Pipe()
    let stdin = Pipe()
    process.standardOutput = output
    process.standardError = output
    process.standardInput = stdin
    try process.run()
    stdin.fileHandleForWriting.write(Data(input.utf8))
    try stdin.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

@Suite("scheduler-ctl dlq and queues", .timeLimit(.minutes(3)))
struct OperatorCLITests {
    @Test("dead letters are listed, filtered, re-driven (dry run first) and purged by filter; queues shows depths")
    func deadLetters() async throws {
        try await Pipeline.run { pipeline in
            pipeline.receiver.script("broken-a", [404, 404, 404])
            pipeline.receiver.script("broken-b", [410, 410, 410, 410])
            try await pipeline.createDue(3, name: "broken-a", due: Date())
            try await pipeline.createDue(2, name: "broken-b", due: Date())
            // The dead letters are published first, then recorded: wait for both.
            let dead = try await pipeline.eventually(timeout: 15) {
                let recorded = try await pipeline.states()["dead"] == 5
                return try pipeline.depth(DeliveryTopology.deadQueue) == 5 && recorded
            }
            try #require(dead)

            let list = try ctl(pipeline, ["dlq", "list"])
            #expect(list.status == 0, "\(list.output)")
            #expect(list.output.contains("DELIVERY ID"))
            #expect(list.output.contains("HTTP 404") && list.output.contains("HTTP 410"))
            #expect(list.output.contains("5 dead letters."))

            let json = try ctl(pipeline, ["dlq", "list", "--json"])
            guard case .array(let items) = try JSONParser.parse(json.output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw ReceiverError("not a JSON array: \(json.output)")
            }
            #expect(items.count == 5)
            #expect(items.first?.objectValue?.keys.contains("last_status") == true)
            #expect(try ctl(pipeline, ["dlq", "list", "--status", "410"]).output.contains("2 dead letters."))
            #expect(try ctl(pipeline, ["dlq", "list", "--endpoint", "broken-a"]).output.contains("3 dead letters."))
            #expect(try ctl(pipeline, ["dlq", "list", "--error-kind", "timeout"]).output.contains("No dead letters match."))
            #expect(try ctl(pipeline, ["dlq", "list", "--since", "1h"]).output.contains("5 dead letters."))
            #expect(try ctl(pipeline, ["dlq", "list", "--until", "1h"]).output.contains("No dead letters match."))
            let badKind = try ctl(pipeline, ["dlq", "list", "--error-kind", "gremlins"])
            #expect(badKind.status != 0 && badKind.output.contains("--error-kind must be one of http, timeout, connection"))

            let queues = try ctl(pipeline, ["queues"])
            #expect(queues.status == 0, "\(queues.output)")
            let deadLine = queues.output.split(separator: "\n").first { $0.hasPrefix("scheduler.dead-letters") }
            #expect(deadLine?.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first == "5", "\(queues.output)")
            #expect(queues.output.contains("scheduler.retry.1s"))

            // One in detail.
            guard case .object(let first)? = items.first, let firstID = first["delivery_id"]?.stringValue else {
                throw ReceiverError("no id")
            }
            let show = try ctl(pipeline, ["dlq", "show", firstID])
            #expect(show.status == 0)
            #expect(show.output.contains("x-failure-reason") && show.output.contains("x-last-status"))

            // The receiver is fixed (its script ran out); a dry run moves nothing.
            let dry = try ctl(pipeline, ["dlq", "retry", "--endpoint", "broken-a", "--dry-run"])
            #expect(dry.output.contains("Would re-drive 3 dead letters."), "\(dry.output)")
            #expect(try pipeline.depth(DeliveryTopology.deadQueue) == 5)
            #expect(pipeline.receiver.received("broken-a").count == 3)

            let retry = try ctl(pipeline, ["dlq", "retry", "--endpoint", "broken-a", "--rate", "50"])
            #expect(retry.status == 0, "\(retry.output)")
            #expect(retry.output.contains("Re-drove 3 dead letters."))
            #expect(retry.output.contains("re-driven 3/3"), "plain progress lines when piped")
            let arrived = try await pipeline.receiver.waitFor("broken-a", count: 6, timeout: 15)
            #expect(arrived.count == 6)
            #expect(Set(arrived.map { $0.header("Idempotency-Key") }).count == 3, "the same delivery ids")
            // The two handed back are in the queue again (a quorum queue takes returns
            // through its log, so allow it a moment on a loaded machine).
            let left = try await pipeline.eventually(timeout: 10) { try pipeline.depth(DeliveryTopology.deadQueue) == 2 }
            let leftDepth = try pipeline.depth(DeliveryTopology.deadQueue)
            let leftStates = try await pipeline.states()
            #expect(left, "dead-letter depth \(leftDepth), records \(leftStates)")

            // Re-driving jobs whose receiver still fails moves each once: they come back, once.
            let again = try ctl(pipeline, ["dlq", "retry", "--status", "410"])
            #expect(again.output.contains("Re-drove 2 dead letters."), "\(again.output)")
            #expect(try await pipeline.receiver.waitFor("broken-b", count: 4, timeout: 15).count == 4)
            let back = try await pipeline.eventually(timeout: 15) {
                let recorded = try await pipeline.states()["dead"] == 2
                return try pipeline.depth(DeliveryTopology.deadQueue) == 2 && recorded
            }
            #expect(back)
            try await Task.sleep(for: .milliseconds(500))

            // Purge asks first; "n" keeps everything.
            let declined = try ctl(pipeline, ["dlq", "purge", "--status", "410"], input: "n\n")
            #expect(declined.output.contains("Nothing purged."))
            // What a walk hands back returns through the quorum queue's log: allow it a moment.
            #expect(try await pipeline.eventually(timeout: 10) { try pipeline.depth(DeliveryTopology.deadQueue) == 2 })
            // A filter that names nothing purges nothing.
            #expect(try ctl(pipeline, ["dlq", "purge", "--status", "500", "--yes"]).output.contains("Purged 0 dead letters."))
            #expect(try await pipeline.eventually(timeout: 10) { try pipeline.depth(DeliveryTopology.deadQueue) == 2 })
            let purged = try ctl(pipeline, ["dlq", "purge", "--status", "410", "--yes"])
            #expect(purged.output.contains("Purged 2 dead letters."), "\(purged.output)")
            #expect(try pipeline.depth(DeliveryTopology.deadQueue) == 0)
            #expect(try await pipeline.states()["purged"] == 2)
            #expect(pipeline.receiver.received("broken-b").count == 4, "purged jobs are not sent")
        }
    }
}
