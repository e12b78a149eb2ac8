import ArgumentParser
import Foundation
import Postgres
import SchedulerCore
import SchedulerStore

/// `scheduler-ctl quota show|set`: a user's quotas, their use, and their own values.
struct QuotaCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quota",
        abstract: "Show or set a user's quotas (schedules, hooks, creates a minute, deliveries a second, shortest interval).",
        subcommands: [Show.self, Set.self], defaultSubcommand: Show.self)

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A user's quotas and how much of each they use.")

        @OptionGroup var user: UserEmail
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            try await withQuotas { users, quotas in
                guard let found = try await users.user(email: user.email), let usage = try await quotas.usage(userID: found.id) else {
                    throw fail("error: no user with email \(user.email)")
                }
                if json {
                    print(QuotaCommand.json(usage))
                } else {
                    print(QuotaCommand.table(usage, email: found.email, admin: found.isAdmin))
                }
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give a user their own quotas; what is not named keeps its value ('default' returns one to its setting).",
            discussion: """
                Values: a whole number (schedules, hooks, creates a minute), a number (deliveries a second), a length \
                (min interval: 500ms, 10s, 1m), or 'default'. --reset returns all of them to the settings' values.
                """)

        @OptionGroup var user: UserEmail
        @Option(help: "Schedules at most.") var schedules: String?
        @Option(help: "Webhooks at most.") var hooks: String?
        @Option(name: .customLong("creates-per-minute"), help: "Schedules created a minute at most.") var createsPerMinute: String?
        @Option(name: .customLong("deliveries-per-second"), help: "Deliveries a second of the enabled schedules, at most.")
        var deliveriesPerSecond: String?
        @Option(name: .customLong("min-interval"), help: "The shortest interval_definition (10s, 1m).") var minInterval: String?
        @Flag(help: "Return every quota of the user to the settings' values.") var reset = false

        func run() async throws {
            try await withQuotas { users, quotas in
                guard let found = try await users.user(email: user.email), let usage = try await quotas.usage(userID: found.id) else {
                    throw fail("error: no user with email \(user.email)")
                }
                var override = reset ? QuotaOverride() : usage.override
                do {
                    try QuotaCommand.apply(schedules, to: &override.schedules, range: 0...100_000_000)
                    try QuotaCommand.apply(hooks, to: &override.hooks, range: 0...100_000)
                    try QuotaCommand.apply(createsPerMinute, to: &override.createsPerMinute, range: 1...10_000_000)
                    if let text = deliveriesPerSecond {
                        if text == "default" {
                            override.deliveriesPerSecond = nil
                        } else if let value = Double(text), value.isFinite, value > 0, value <= 1_000_000 {
                            override.deliveriesPerSecond = value
                        } else {
                            throw ValidationError("--deliveries-per-second must be a number above 0, at most 1000000, or 'default'")
                        }
                    }
                    if let text = minInterval {
                        if text == "default" {
                            override.minimumInterval = nil
                        } else if let value = ScheduleLimits.parseDuration(text) {
                            override.minimumInterval = value
                        } else {
                            throw ValidationError("--min-interval must be a length like 10s or 1m, or 'default'")
                        }
                    }
                } catch let error as ValidationError {
                    throw fail("error: \(error.message)")
                }
                try await quotas.set(userID: found.id, override: override)
                guard let after = try await quotas.usage(userID: found.id) else { return }
                print(QuotaCommand.table(after, email: found.email, admin: found.isAdmin))
            }
        }
    }

    static func apply(_ text: String?, to value: inout Int?, range: ClosedRange<Int>) throws {
        guard let text else { return }
        if text == "default" {
            value = nil
        } else if let number = Int(text), range.contains(number) {
            value = number
        } else {
            throw ValidationError("'\(text)' must be a whole number from \(range.lowerBound) to \(range.upperBound), or 'default'")
        }
    }

    static func table(_ usage: QuotaStore.Usage, email: String, admin: Bool) -> String {
        let quota = usage.quota
        let own = usage.override
        func mark(_ value: Any?) -> String { value == nil ? (admin ? "admin default" : "default") : "own" }
        let rows: [[String]] = [
            ["schedules", String(quota.schedules), String(usage.schedules), mark(own.schedules)],
            ["hooks", String(quota.hooks), String(usage.hooks), mark(own.hooks)],
            ["creates_per_minute", String(quota.createsPerMinute), String(usage.createsThisMinute), mark(own.createsPerMinute)],
            [
                "deliveries_per_second", QuotaExceeded.number(quota.deliveriesPerSecond), QuotaExceeded.number(usage.deliveriesPerSecond),
                mark(own.deliveriesPerSecond),
            ],
            [
                "min_interval", quota.minimumInterval > 0 ? ScheduleLimits.describe(microseconds: quota.minimumInterval) : "-", "-",
                mark(own.minimumInterval),
            ],
        ]
        return "\(email)\(admin ? " (admin)" : "")\n" + Terminal.table(["QUOTA", "LIMIT", "USED", "FROM"], rows)
    }

    static func json(_ usage: QuotaStore.Usage) -> String {
        let quota = usage.quota
        let value: JSONValue = .object([
            "schedules": .object(["limit": .int(quota.schedules), "used": .int(usage.schedules)]),
            "hooks": .object(["limit": .int(quota.hooks), "used": .int(usage.hooks)]),
            "creates_per_minute": .object(["limit": .int(quota.createsPerMinute), "used": .int(usage.createsThisMinute)]),
            "deliveries_per_second": .object([
                "limit": .number(QuotaExceeded.number(quota.deliveriesPerSecond)),
                "used": .number(QuotaExceeded.number(usage.deliveriesPerSecond)),
            ]),
            "min_interval_seconds": .number(QuotaExceeded.number(Double(quota.minimumInterval) / 1_000_000)),
        ])
        return value.serialized
    }
}

/// Runs `body` with the users' and quotas' stores of the configured database.
func withQuotas<T>(_ body: (UserStore, QuotaStore) async throws -> T) async throws -> T {
    let configuration = try loadConfiguration(requireSecret: false)
    let pool = PostgresPool(url: configuration.databaseURL, size: 1, logger: makeLogger("scheduler-ctl"))
    defer { pool.close() }
    do {
        return try await body(
            UserStore(pool: pool, minter: TokenMinter(secretKey: configuration.secretKey)),
            QuotaStore(pool: pool, defaults: QuotaDefaults(configuration)))
    } catch let exit as ExitCode {
        throw exit
    } catch {
        throw fail("error: \(error)")
    }
}
