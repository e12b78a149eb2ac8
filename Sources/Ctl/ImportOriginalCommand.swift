import AMQP
import ArgumentParser
import DeliveryQueues
import Foundation
import Postgres
import SchedulerCore
import SchedulerStore

/// `scheduler-ctl import-original`: moves a running installation of the original Seed
/// Scheduler over (see `OriginalImport` and the README's "Moving from the original").
struct ImportOriginal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-original",
        abstract: "Import the original Seed Scheduler's users, tokens, groups, schedules, hooks and failures.",
        discussion: """
            Reads the original's PostgreSQL database (read only, one snapshot; it may keep running) \
            and writes here in one transaction: what is new is created, what changed since the last \
            import is updated, what did not is skipped, nothing is made twice. Tokens are kept as \
            they are, so clients keep their Authorization headers. A row this service would refuse \
            is imported disabled (a schedule) or left out (a token, a hook), and listed with the \
            reason. Failures become dead letters (a record and a message in the dead-letter queue). \
            --dry-run does all of it in a transaction that is rolled back, and publishes nothing.
            """)

    @Option(name: .customLong("from"), help: "The original's PostgreSQL URL (postgres://user:password@host:port/name).")
    var source: String

    @Flag(help: "Show what would be imported; write nothing.")
    var dryRun = false

    func run() async throws {
        let configuration = try loadConfiguration(requireSecret: false)
        let logger = makeLogger("scheduler-ctl")
        let sourcePool = PostgresPool(url: source, size: 1, logger: logger)
        let targetPool = PostgresPool(url: configuration.databaseURL, size: 1, logger: logger)
        defer {
            sourcePool.close()
            targetPool.close()
        }
        let importer = OriginalImport(source: sourcePool, target: targetPool, limits: configuration.scheduleLimits)
        let summary: OriginalImport.Summary
        do {
            summary = try await importer.run(dryRun: dryRun)
        } catch {
            throw fail("error: the import stopped, nothing was written: \(error)")
        }
        print(Self.report(summary, dryRun: dryRun), terminator: "")
        guard !dryRun, !summary.deadLetters.isEmpty else { return }
        // The records are committed; their messages go to the dead-letter queue now. Should
        // this fail, the next import publishes those not marked published.
        let publisher = AMQPPublisher(
            url: configuration.brokerURL, topology: DeliveryTopology.make(configuration.retryPolicy), logger: logger)
        defer { publisher.close() }
        do {
            for batch in stride(from: 0, to: summary.deadLetters.count, by: 500) {
                let letters = Array(summary.deadLetters[batch..<min(batch + 500, summary.deadLetters.count)])
                try await publisher.publish(letters.map(Self.message))
                try await importer.published(letters)
            }
            print("dead letters published: \(summary.deadLetters.count)")
        } catch {
            throw fail("error: dead letters not published (run the import again to publish them): \(error)")
        }
    }

    /// A failure's message in the dead-letter queue, as a worker leaves one.
    static func message(_ letter: OriginalImport.DeadLetter) -> AMQPOutgoingMessage {
        let job = DeliveryJob(deliveryID: letter.deliveryID, scheduleID: letter.scheduleID, scheduledFor: letter.failedAt, kind: .schedule)
        return AMQPOutgoingMessage(
            exchange: DeliveryTopology.deadExchange, routingKey: job.routingKey, body: job.serializedBytes,
            messageID: letter.deliveryID.lowercasedText,
            headers: [
                DeliveryHeaders.reason: .string(letter.reason), DeliveryHeaders.attempts: .int(0),
                DeliveryHeaders.failedAt: .string(Timestamp.format(letter.failedAt)),
            ])
    }

    static func report(_ summary: OriginalImport.Summary, dryRun: Bool) -> String {
        var text = dryRun ? "dry run: nothing was written\n" : ""
        let rows = OriginalImport.Kind.allCases.map { kind in
            let counts = summary.counts[kind] ?? .init()
            return [kind.rawValue + "s", String(counts.created), String(counts.updated), String(counts.unchanged), String(counts.refused)]
        }
        text += Terminal.table(["", "CREATED", "UPDATED", "UNCHANGED", "REFUSED"], rows)
        if !text.hasSuffix("\n") { text += "\n" }
        for refusal in summary.refusals {
            text += "refused \(refusal.kind.rawValue) \(refusal.originalID): \(refusal.reason)\n"
        }
        for note in summary.notes { text += "note: \(note)\n" }
        return text
    }
}
