import ArgumentParser
import Foundation
import Postgres
import SchedulerCore
import SchedulerStore

/// `scheduler-ctl receivers`: every receiver the workers know, with its circuit breaker;
/// `open`, `close` and `reset` act on one by hand.
struct Receivers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List receivers (scheme://host:port) with their circuit state, concurrency, success rate and latency.",
        discussion: """
            Workers write what they see every few seconds. STATE is the circuit breaker: closed \
            (delivering), open (jobs wait in the broker and do not use attempts; a probe tests the \
            receiver every BREAKER_PROBE_INTERVAL seconds) or half-open (a probe is in flight). \
            LIMIT is the adaptive limit on requests in flight (at most RECEIVER_CONCURRENCY); WAITING \
            counts jobs held back for it. 'open' holds a receiver open until 'close'; 'reset' also \
            forgets what was learnt about it.
            """,
        subcommands: [List.self, Open.self, Close.self, Reset.self],
        defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List receivers, open ones first.")

        @Flag(help: "Print JSON lines instead of a table.")
        var json = false

        func run() async throws {
            let configuration = try loadConfiguration(requireSecret: false)
            let pool = PostgresPool(url: configuration.databaseURL, size: 1, logger: makeLogger("scheduler-ctl"))
            defer { pool.close() }
            let receivers = try await ReceiverStore(pool: pool).all()
            if json {
                for receiver in receivers { print(Self.json(receiver).serialized) }
                return
            }
            guard !receivers.isEmpty else {
                print("No receivers yet: workers list them once they deliver.")
                return
            }
            let rows = receivers.map { receiver in
                [
                    receiver.receiver, receiver.state + (receiver.heldOpen ? " (by hand)" : ""),
                    String(format: "%.1f", receiver.concurrency), String(receiver.inFlight), String(receiver.waiting),
                    receiver.successRate.map { String(format: "%.0f%%", $0 * 100) } ?? "-",
                    receiver.latencyMilliseconds.map { String(format: "%.0f ms", $0) } ?? "-",
                    receiver.pausedUntil.map { Timestamp.format($0) } ?? "-",
                    receiver.updatedAt.map { Timestamp.format($0) } ?? "-",
                ]
            }
            print(
                Terminal.table(
                    ["RECEIVER", "STATE", "LIMIT", "IN FLIGHT", "WAITING", "SUCCESS", "LATENCY", "PAUSED UNTIL", "UPDATED"], rows),
                terminator: "")
        }

        static func json(_ receiver: ReceiverStore.Report) -> JSONValue {
            func number(_ value: Double?) -> JSONValue { value.map { .number(String($0)) } ?? .null }
            return .object([
                "receiver": .string(receiver.receiver), "state": .string(receiver.state), "held_open": .bool(receiver.heldOpen),
                "concurrency": number(receiver.concurrency), "in_flight": .number(String(receiver.inFlight)),
                "waiting": .number(String(receiver.waiting)), "success_rate": number(receiver.successRate),
                "latency_ms": number(receiver.latencyMilliseconds),
                "paused_until": receiver.pausedUntil.map { .string(Timestamp.format($0)) } ?? .null,
                "changed_at": receiver.changedAt.map { .string(Timestamp.format($0)) } ?? .null,
                "updated_at": receiver.updatedAt.map { .string(Timestamp.format($0)) } ?? .null,
            ])
        }
    }

    struct Open: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open a receiver's circuit and hold it open: its jobs wait, no probes, until 'close'.")
        @Argument(help: "The receiver, as listed (scheme://host:port), or any URL on it.") var receiver: String
        func run() async throws { try await Receivers.send("open", to: receiver) }
    }

    struct Close: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Close a receiver's circuit now: its jobs are delivered again.")
        @Argument(help: "The receiver, as listed (scheme://host:port), or any URL on it.") var receiver: String
        func run() async throws { try await Receivers.send("close", to: receiver) }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Close a receiver's circuit and forget what was learnt about it (limit, failures, pause).")
        @Argument(help: "The receiver, as listed (scheme://host:port), or any URL on it.") var receiver: String
        func run() async throws { try await Receivers.send("reset", to: receiver) }
    }

    static func send(_ command: String, to receiver: String) async throws {
        guard let key = ReceiverKey.normalize(receiver) else {
            throw fail("error: '\(receiver)' is not an http(s) receiver (scheme://host:port)")
        }
        let configuration = try loadConfiguration(requireSecret: false)
        let pool = PostgresPool(url: configuration.databaseURL, size: 1, logger: makeLogger("scheduler-ctl"))
        defer { pool.close() }
        try await ReceiverStore(pool: pool).command(command, receiver: key)
        print("\(key): \(command) (workers apply it within a few seconds)")
    }
}
