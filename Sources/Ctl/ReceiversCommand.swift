import ArgumentParser
import Foundation
import Postgres
import SchedulerCore
import SchedulerStore

/// `scheduler-ctl receivers`: every receiver the workers know, with its circuit breaker;
/// `open`, `close` and `reset` act on one by hand, `set` gives it limits.
struct Receivers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List receivers (scheme://host:port) with their circuit state, concurrency, success rate and latency.",
        discussion: """
            Workers write what they see every few seconds. STATE is the circuit breaker: closed \
            (delivering), open (jobs wait in the broker and do not use attempts; a probe tests the \
            receiver every BREAKER_PROBE_INTERVAL seconds) or half-open (a probe is in flight). \
            LIMIT is the adaptive limit on requests in flight (at most RECEIVER_CONCURRENCY); WAITING \
            counts jobs held back for it. 'open' holds a receiver open until 'close'; 'reset' also \
            forgets what was learnt about it. 'set' gives a receiver a concurrency and a rate by hand \
            (SET BY HAND), shared among the workers alive.
            """,
        subcommands: [List.self, Open.self, Close.self, Reset.self, SetLimits.self],
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
                    receiver.limits.isEmpty ? "-" : receiver.limits.description,
                    receiver.updatedAt.map { Timestamp.format($0) } ?? "-",
                ]
            }
            print(
                Terminal.table(
                    [
                        "RECEIVER", "STATE", "LIMIT", "IN FLIGHT", "WAITING", "SUCCESS", "LATENCY", "PAUSED UNTIL", "SET BY HAND",
                        "UPDATED",
                    ], rows),
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
                "limits": Receivers.json(receiver.limits),
            ])
        }
    }

    /// Limits set by hand as JSON: each null when not set.
    static func json(_ limits: ReceiverLimits) -> JSONValue {
        .object([
            "concurrency": limits.concurrency.map { .number(String($0)) } ?? .null,
            "rate": limits.rate.map { .number(String($0)) } ?? .null,
            "burst": limits.burst.map { .number(String($0)) } ?? .null,
        ])
    }

    struct SetLimits: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Give a receiver a concurrency and a rate by hand, across all workers; kept over restarts.",
            discussion: """
                Replaces the receiver's limits: an option left out is not set (the adaptive limit, \
                at most RECEIVER_CONCURRENCY; no rate). The limits hold for the receiver as a whole and \
                are shared among the workers alive (each takes its part of the concurrency, at least \
                one request, and of the rate). --clear gives the receiver back to the adaptive limit.
                """)
        @Argument(help: "The receiver, as listed (scheme://host:port), or any URL on it.") var receiver: String
        @Option(help: "Requests in flight at most (1-10000), in place of the adaptive limit.") var concurrency: Int?
        @Option(help: "Requests a second at most (more than 0, at most 100000).") var rate: Double?
        @Option(help: "Requests the rate lets through at once (1-100000; default: one second of the rate).") var burst: Int?
        @Flag(help: "Remove the limits set by hand.") var clear = false

        func run() async throws {
            guard let key = ReceiverKey.normalize(receiver) else {
                throw fail("error: '\(receiver)' is not an http(s) receiver (scheme://host:port)")
            }
            if clear, concurrency != nil || rate != nil || burst != nil {
                throw fail("error: --clear takes no limits")
            }
            if !clear, concurrency == nil, rate == nil {
                throw fail("error: give --concurrency, --rate (with --burst), or --clear")
            }
            let limits: ReceiverLimits
            do {
                limits = try ReceiverLimits.validated(concurrency: concurrency, rate: rate, burst: burst)
            } catch {
                throw fail("error: \(error.message)")
            }
            let configuration = try loadConfiguration(requireSecret: false)
            let pool = PostgresPool(url: configuration.databaseURL, size: 1, logger: makeLogger("scheduler-ctl"))
            defer { pool.close() }
            do {
                try await ReceiverStore(pool: pool).setLimits(limits, receiver: key)
            } catch {
                throw fail("error: \(error)")
            }
            print("\(key): \(limits.description) (workers apply it within a few seconds)")
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
