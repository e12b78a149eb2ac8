import AMQP
import ArgumentParser
import DeliveryQueues
import Foundation
import Postgres
import SchedulerCore
import SchedulerStore

/// `scheduler-ctl queues`: the depth of every queue of the topology, over AMQP alone.
struct Queues: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the depth of every queue of the delivery topology.",
        discussion: """
            READY is the messages waiting in the queue and CONSUMERS the workers attached, as RabbitMQ \
            reports them over AMQP (queue.declare); no management plugin is needed. AMQP does not report \
            messages delivered but not yet acknowledged, so UNACKED is read from the delivery records \
            instead: jobs published and not finished, less those ready in the main queue (an estimate).
            """)

    @Flag(help: "Refresh every --interval seconds until interrupted.")
    var watch = false

    @Option(help: "Seconds between refreshes with --watch.")
    var interval: Double = 2

    func run() async throws {
        let configuration = try loadConfiguration(requireSecret: false)
        let pool = PostgresPool(url: configuration.databaseURL, size: 1, logger: makeLogger("scheduler-ctl"))
        defer { pool.close() }
        repeat {
            let text: String
            do {
                text = try await Self.report(configuration: configuration, pool: pool)
            } catch let error as AMQPError {
                throw fail("error: \(error)")
            }
            if watch && Terminal.isInteractive {
                // Redraw in place: home the cursor and clear the screen.
                FileHandle.standardOutput.write(Data("\u{1B}[H\u{1B}[2J".utf8))
            }
            // Written straight to the descriptor: piped, print's buffer would hold the tables
            // back until it filled, and a --watch stopped by a signal would show nothing.
            FileHandle.standardOutput.write(Data((text + "\n").utf8))
            if watch { try await Task.sleep(for: .seconds(interval)) }
        } while watch
    }

    static func report(configuration: Configuration, pool: PostgresPool) async throws -> String {
        let counts = try await QueueDepths.read(brokerURL: configuration.brokerURL, policy: configuration.retryPolicy)
        let inProgress = try? await DeliveryStore(pool: pool).inProgressCount()
        // Jobs in progress not ready in a queue are unacked in the main or the held queue (one
        // estimate for both, shown on the main queue: AMQP does not report unacked messages).
        let mainReady = counts.filter { $0.0 == DeliveryTopology.queue || $0.0 == DeliveryTopology.heldQueue }
            .reduce(0) { $0 + ($1.1?.messages ?? 0) }
        var lines: [[String]] = []
        let retryingReady = counts.filter { $0.0.hasPrefix("scheduler.retry.") }.reduce(0) { $0 + ($1.1?.messages ?? 0) }
        for (name, queueCounts) in counts {
            guard let queueCounts else {
                lines.append([name, "-", "-", "-"])
                continue
            }
            var unacked = "-"
            if name == DeliveryTopology.queue, let inProgress {
                unacked = String(max(0, inProgress - mainReady - retryingReady))
            }
            lines.append([name, String(queueCounts.messages), unacked, String(queueCounts.consumers)])
        }
        return Terminal.table(["QUEUE", "READY", "UNACKED", "CONSUMERS"], lines) + "\n(at \(Timestamp.format(Date())))"
    }
}
