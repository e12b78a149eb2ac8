import AMQP
import ArgumentParser
import DeliveryQueues
import Foundation
import Postgres
import SchedulerCore
import SchedulerStore

/// `scheduler-ctl dead-letters ...` (also `dlq`): look at, re-drive and purge dead letters.
struct DeadLetters: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters",
        abstract: "List, show, re-drive and purge dead letters (deliveries that failed for good).",
        discussion: """
            Dead letters are deliveries that failed for good: the receiver refused them (a 4xx other \
            than 408, 425, 429) or kept failing for DELIVERY_ATTEMPTS attempts. Each one's record says \
            why; 'redrive' moves them back to the delivery queue with fresh attempts. The API calls them \
            failed tasks (/api/v1/failed-tasks/), the original service's name, kept for its clients.
            """,
        subcommands: [List.self, Show.self, Redrive.self, Purge.self],
        aliases: ["dlq"])
}

/// The filters `list`, `retry` and `purge` share.
struct DeadLetterFilter: ParsableArguments {
    @Option(help: "Only this schedule's dead letters (its id).")
    var schedule: String?

    @Option(help: "Only those whose endpoint contains this text.")
    var endpoint: String?

    @Option(help: "Only those whose last answer had this HTTP status.")
    var status: Int?

    @Option(help: "Only this kind of failure: http (the receiver answered), timeout, connection.")
    var errorKind: String?

    @Option(help: "Only those that failed since this time (ISO 8601, or an age like 30m, 2h, 7d).")
    var since: String?

    @Option(help: "Only those that failed before this time (ISO 8601, or an age like 30m, 2h, 7d).")
    var until: String?

    @Option(help: "Only those of schedules this user created (their email).")
    var owner: String?

    func validate() throws {
        _ = try storeFilter()
    }

    var isEmpty: Bool {
        schedule == nil && endpoint == nil && status == nil && errorKind == nil && since == nil && until == nil && owner == nil
    }

    func storeFilter(now: Date = Date()) throws -> DeliveryStore.DeadFilter {
        var filter = DeliveryStore.DeadFilter()
        if let schedule {
            guard let id = UUID(uuidString: schedule) else {
                throw ValidationError("--schedule must be a schedule id (a UUID), got '\(schedule)'")
            }
            filter.scheduleID = id
        }
        filter.endpoint = endpoint
        filter.status = status
        if let errorKind {
            guard let kind = DeliveryStore.DeadFilter.ErrorKind(rawValue: errorKind) else {
                throw ValidationError("--error-kind must be one of http, timeout, connection; got '\(errorKind)'")
            }
            filter.errorKind = kind
        }
        filter.since = try since.map { try Self.time($0, option: "--since", now: now) }
        filter.until = try until.map { try Self.time($0, option: "--until", now: now) }
        if let owner {
            guard ScheduleValidation.isEmail(owner) else { throw ValidationError("--owner must be an email address, got '\(owner)'") }
            filter.owner = owner
        }
        return filter
    }

    /// An ISO 8601 time, or an age (`90s`, `30m`, `2h`, `7d`) before now.
    static func time(_ text: String, option: String, now: Date) throws -> Date {
        if let date = Timestamp.parse(text) { return date }
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        if let unit = text.last.flatMap({ units[$0] }), let value = Double(text.dropLast()), value >= 0 {
            return now.addingTimeInterval(-value * unit)
        }
        throw ValidationError("\(option) must be an ISO 8601 time or an age like 30m, 2h, 7d; got '\(text)'")
    }
}

/// The database and broker, from the environment.
struct Operator {
    let configuration: Configuration
    let pool: PostgresPool
    let store: DeliveryStore
    let redriver: DeadLetterRedriver

    static func open() throws -> Operator {
        let configuration = try loadConfiguration(requireSecret: false)
        let logger = makeLogger("scheduler-ctl")
        let pool = PostgresPool(url: configuration.databaseURL, size: 2, logger: logger)
        let store = DeliveryStore(pool: pool)
        return Operator(
            configuration: configuration, pool: pool, store: store,
            redriver: DeadLetterRedriver(
                brokerURL: configuration.brokerURL, policy: configuration.retryPolicy, store: store, logger: logger))
    }

    func close() { pool.close() }
}

extension DeliveryStore.DeadLetter {
    var row: [String] {
        [
            delivery.id.lowercasedText, delivery.scheduleID?.lowercasedText ?? "-",
            Terminal.truncate(endpoint ?? "-", 40),
            delivery.lastStatus.map { "HTTP \($0)" } ?? Terminal.truncate(delivery.lastError ?? "-", 30),
            String(delivery.attempts), delivery.finishedAt.map(Timestamp.format) ?? "-",
        ]
    }

    var json: JSONValue {
        .object([
            "delivery_id": .string(delivery.id.lowercasedText),
            "schedule_id": delivery.scheduleID.map { .string($0.lowercasedText) } ?? .null,
            "kind": .string(delivery.kind.rawValue),
            "endpoint": endpoint.map(JSONValue.string) ?? .null,
            "owner": owner.map(JSONValue.string) ?? .null,
            "scheduled_for": .string(Timestamp.format(delivery.scheduledFor)),
            "last_status": delivery.lastStatus.map(JSONValue.int) ?? .null,
            "last_error": delivery.lastError.map(JSONValue.string) ?? .null,
            "attempts": .int(delivery.attempts),
            "failed_at": delivery.finishedAt.map { .string(Timestamp.format($0)) } ?? .null,
        ])
    }

    static let header = ["DELIVERY ID", "SCHEDULE", "ENDPOINT", "LAST STATUS / ERROR", "ATTEMPTS", "FAILED AT"]
}

extension DeadLetters {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead letters, most recent failure first.")

        @OptionGroup var filter: DeadLetterFilter

        @Flag(help: "Print JSON (one array) instead of a table.")
        var json = false

        @Option(help: "Show at most this many.")
        var limit: Int = 1000

        func run() async throws {
            let ops = try Operator.open()
            defer { ops.close() }
            let letters: [DeliveryStore.DeadLetter]
            do {
                letters = try await ops.store.deadLetters(try filter.storeFilter(), limit: limit)
            } catch let error as PostgresError {
                throw fail("error: \(error)")
            }
            if json {
                print(JSONValue.array(letters.map(\.json)).serialized)
            } else if letters.isEmpty {
                print("No dead letters\(filter.isEmpty ? "" : " match").")
            } else {
                print(Terminal.table(DeliveryStore.DeadLetter.header, letters.map(\.row)))
                print("\(letters.count) dead letter\(letters.count == 1 ? "" : "s").")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one dead letter: its record (attempts, last status and error, latency), the job, and the failure headers.")

        @Argument(help: "The delivery id.")
        var deliveryID: String

        func run() async throws {
            guard let id = UUID(uuidString: deliveryID) else { throw ValidationError("'\(deliveryID)' is not a delivery id (a UUID)") }
            let ops = try Operator.open()
            defer { ops.close() }
            do {
                guard let delivery = try await ops.store.delivery(id: id) else { throw fail("error: no delivery \(deliveryID)") }
                let letters = try await ops.store.deadLetters(.init(), limit: 100_000).filter { $0.delivery.id == id }
                var object = (letters.first?.json ?? .object([:])).objectValue ?? [:]
                object["delivery_id"] = .string(id.lowercasedText)
                object["state"] = .string(delivery.state.rawValue)
                object["latency_ms"] = delivery.latencyMilliseconds.map { .number(String(format: "%.3f", $0)) } ?? .null
                object["created_at"] = .string(Timestamp.format(delivery.createdAt))
                let messages = try await ops.redriver.browse().filter { $0.messageID == id.lowercasedText }
                if let message = messages.first {
                    object["job"] = (try? JSONParser.parse(message.body)) ?? .string(String(decoding: message.body, as: UTF8.self))
                    object["routing_key"] = .string(message.routingKey)
                    var headers = JSONObject()
                    for (key, value) in message.headers.sorted(by: { $0.key < $1.key }) {
                        headers[key] = value.intValue.map { JSONValue.int(Int($0)) } ?? .string(value.stringValue ?? "")
                    }
                    object["headers"] = .object(headers)
                } else {
                    object["job"] = .null
                    object["note"] = .string("not in the dead-letter queue (re-driven or purged)")
                }
                print(Self.pretty(.object(object)))
            } catch let error as PostgresError {
                throw fail("error: \(error)")
            } catch let error as AMQPError {
                throw fail("error: \(error)")
            }
        }

        /// One field per line, for reading.
        static func pretty(_ value: JSONValue) -> String {
            guard case .object(let object) = value else { return value.serialized }
            let width = object.keys.map(\.count).max() ?? 0
            return object.entries.map { entry in
                let text = entry.value.stringValue ?? entry.value.serialized
                return entry.key.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + text
            }.joined(separator: "\n")
        }
    }

    struct Redrive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-drive dead letters: move them back to the delivery queue with fresh attempts.",
            discussion: """
                Name one delivery id, a filter, or --all. Each job keeps its delivery id, and leaves the \
                dead-letter queue only after its republish is confirmed by the broker, so a crash mid-way \
                loses nothing.
                """,
            aliases: ["retry"])

        @Argument(help: "One delivery id to re-drive.")
        var deliveryID: String?

        @OptionGroup var filter: DeadLetterFilter

        @Flag(help: "Every dead letter (including malformed messages, which have no record).")
        var all = false

        @Flag(help: "Show what would move, and move nothing.")
        var dryRun = false

        @Option(help: "At most this many a second.")
        var rate: Double?

        func validate() throws {
            let chosen = [deliveryID != nil, !filter.isEmpty, all].filter { $0 }.count
            guard chosen == 1 else {
                throw ValidationError("name one delivery id, a filter (--schedule, --endpoint, --owner, ...), or --all")
            }
            if let deliveryID, UUID(uuidString: deliveryID) == nil {
                throw ValidationError("'\(deliveryID)' is not a delivery id (a UUID)")
            }
            if let rate, rate <= 0 { throw ValidationError("--rate must be positive") }
        }

        func run() async throws {
            let ops = try Operator.open()
            defer { ops.close() }
            do {
                let selection = try await select(ops)
                if dryRun {
                    print(selection.describe(verb: "Would re-drive"))
                    return
                }
                let progress = Progress(total: selection.expected, verb: "re-driven")
                let moved = try await ops.redriver.redrive(rate: rate, progress: { progress.update($0) }, where: selection.matches)
                progress.finish()
                print("Re-drove \(moved.count) dead letter\(moved.count == 1 ? "" : "s").")
            } catch let error as PostgresError {
                throw fail("error: \(error)")
            } catch let error as AMQPError {
                throw fail("error: \(error)")
            }
        }

        func select(_ ops: Operator) async throws -> DeadLetterSelection {
            if all { return DeadLetterSelection(letters: try await ops.store.deadLetters(.init()), ids: nil) }
            var letters = try await ops.store.deadLetters(try filter.storeFilter())
            if let deliveryID {
                letters = try await ops.store.deadLetters(.init()).filter { $0.delivery.id == UUID(uuidString: deliveryID) }
            }
            return DeadLetterSelection(letters: letters, ids: Set(letters.map { $0.delivery.id.lowercasedText }))
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Drop dead letters for good (their records stay, marked purged).",
            discussion: "Asks for confirmation unless --yes is given.")

        @OptionGroup var filter: DeadLetterFilter

        @Flag(help: "Every dead letter.")
        var all = false

        @Flag(help: "Do not ask for confirmation.")
        var yes = false

        func validate() throws {
            guard all != !filter.isEmpty else { throw ValidationError("name a filter (--schedule, --endpoint, ...) or --all") }
        }

        func run() async throws {
            let ops = try Operator.open()
            defer { ops.close() }
            do {
                let letters = try await ops.store.deadLetters(all ? .init() : try filter.storeFilter())
                let selection = DeadLetterSelection(
                    letters: letters, ids: all ? nil : Set(letters.map { $0.delivery.id.lowercasedText }))
                if !yes {
                    print(selection.describe(verb: "Would purge"))
                    print("Purge \(all ? "every dead letter" : "these \(letters.count)")? [y/N] ", terminator: "")
                    guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
                        print("Nothing purged.")
                        return
                    }
                }
                let progress = Progress(total: selection.expected, verb: "purged")
                let purged = try await ops.redriver.purge(progress: { progress.update($0) }, where: selection.matches)
                progress.finish()
                print("Purged \(purged.count) dead letter\(purged.count == 1 ? "" : "s").")
            } catch let error as PostgresError {
                throw fail("error: \(error)")
            } catch let error as AMQPError {
                throw fail("error: \(error)")
            }
        }
    }
}

/// The dead letters a command acts on: those with these delivery ids, or all (`ids` nil).
struct DeadLetterSelection: Sendable {
    let letters: [DeliveryStore.DeadLetter]
    let ids: Set<String>?

    var expected: Int { letters.count }

    var matches: @Sendable (AMQPDelivery) -> Bool {
        let ids = ids
        return { message in ids.map { $0.contains(message.messageID ?? "") } ?? true }
    }

    func describe(verb: String) -> String {
        guard !letters.isEmpty else {
            return "\(verb) nothing: no dead letters match\(ids == nil ? " (malformed messages, if any, have no record)" : "")."
        }
        return Terminal.table(DeliveryStore.DeadLetter.header, letters.map(\.row))
            + "\n\(verb) \(letters.count) dead letter\(letters.count == 1 ? "" : "s")."
    }
}
