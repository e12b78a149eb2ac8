import ArgumentParser
import Foundation
import Postgres
import SchedulerCore
import SchedulerStore

/// `scheduler-ctl schedules`: list, show, pause, resume, run now and read the history of
/// schedules, as an operator (every tenant's).
struct Schedules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, show, pause, resume and run schedules now, and read their history.",
        discussion: """
            An operator's view: every user's schedules. What an operator changes is recorded in \
            the schedule's history without a user (by: null), or as the user given with --by.
            """,
        subcommands: [List.self, Show.self, Pause.self, Resume.self, Trigger.self, History.self],
        defaultSubcommand: List.self)

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List schedules, newest first.")
        @Option(help: "Only enabled (true) or disabled (false) schedules.") var enabled: Bool?
        @Option(help: "Only schedules whose endpoint contains this text.") var endpoint: String?
        @Option(help: "At most this many (1 to 10000).") var limit = 100
        @Flag(help: "Print JSON lines instead of a table.") var json = false

        func validate() throws {
            guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be from 1 to 10000") }
        }

        func run() async throws {
            try await Schedules.withStore { store, _, _ in
                let page = try await store.schedules(
                    filter: ScheduleStore.Filter(enabled: enabled, endpointContains: endpoint), limit: limit, offset: 0)
                if json {
                    for schedule in page.items { print(Schedules.json(schedule).serialized) }
                    return
                }
                guard !page.items.isEmpty else {
                    print("No schedules.")
                    return
                }
                let rows = page.items.map { schedule in
                    [
                        schedule.id.lowercasedText, schedule.fields.enabled ? "yes" : "no",
                        schedule.fields.nextSendAt.map(Timestamp.format) ?? "-",
                        schedule.fields.cronDefinition ?? schedule.fields.intervalDefinition.map { "every \($0)" } ?? "once",
                        Terminal.truncate(schedule.fields.endpoint, 60),
                    ]
                }
                print(Terminal.table(["ID", "ENABLED", "NEXT", "WHEN", "ENDPOINT"], rows))
                if page.count > page.items.count { print("(\(page.items.count) of \(page.count): --limit shows more)") }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a schedule (its auth_token only as set or not).")
        @Argument(help: "The schedule's id.") var id: String
        func run() async throws {
            let id = try Schedules.parse(id)
            try await Schedules.withStore { store, _, _ in
                guard let schedule = try await store.schedule(id: id) else { throw fail("error: no schedule \(id.lowercasedText)") }
                guard case .object(let object) = Schedules.json(schedule) else { return }
                for (key, value) in object.entries { print("\(key): \(value.stringValue ?? value.serialized)") }
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause a schedule (disable it), with a note saying why.")
        @Argument(help: "The schedule's id.") var id: String
        @Option(help: "Why it is paused (at most 500 bytes), shown with the schedule.") var note: String?
        @Option(help: "The user to record as having paused it (default: none, an operator).") var by: String?
        func run() async throws {
            var body: JSONObject = ["enabled": .bool(false)]
            if let note { body["paused_note"] = .string(note) }
            let schedule = try await Schedules.change(id, body: body, by: by)
            print("\(schedule.id.lowercasedText): paused" + (schedule.fields.pausedNote.map { " (\($0))" } ?? ""))
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused schedule (enable it; its note is cleared).")
        @Argument(help: "The schedule's id.") var id: String
        @Option(help: "The user to record as having resumed it (default: none, an operator).") var by: String?
        func run() async throws {
            let schedule = try await Schedules.change(id, body: ["enabled": .bool(true)], by: by)
            print("\(schedule.id.lowercasedText): resumed; next run \(schedule.fields.nextSendAt.map(Timestamp.format) ?? "none")")
        }
    }

    struct Trigger: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a schedule now: one delivery at once, whatever its state (beat publishes it).")
        @Argument(help: "The schedule's id.") var id: String
        @Option(help: "The user to record as having run it (default: none, an operator).") var by: String?
        func run() async throws {
            let id = try Schedules.parse(id)
            try await Schedules.withStore { store, users, _ in
                let actor = try await Schedules.user(by, users)
                guard let delivery = try await store.trigger(id: id, owner: nil, by: actor, quota: nil) else {
                    throw fail("error: no schedule \(id.lowercasedText)")
                }
                print("\(id.lowercasedText): delivery \(delivery.id.lowercasedText) queued")
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A schedule's history, newest first: who created, changed, paused, resumed, ran or deleted it.")
        @Argument(help: "The schedule's id (also of a deleted one).") var id: String
        @Option(help: "At most this many entries (1 to 1000).") var limit = 50
        @Flag(help: "Print JSON lines instead of a table.") var json = false

        func validate() throws {
            guard (1...1_000).contains(limit) else { throw ValidationError("--limit must be from 1 to 1000") }
        }

        func run() async throws {
            let id = try Schedules.parse(id)
            try await Schedules.withStore { _, users, pool in
                guard let page = try await ScheduleHistory(pool: pool).entries(scheduleID: id, owner: nil, limit: limit, offset: 0)
                else { throw fail("error: no schedule \(id.lowercasedText), and no history of one") }
                var emails: [Int64: String] = [:]
                for actor in Set(page.items.compactMap(\.actorID)) { emails[actor] = try await users.user(id: actor)?.email }
                if json {
                    for entry in page.items {
                        print(
                            JSONValue.object([
                                "at": .string(Timestamp.format(entry.at)), "action": .string(entry.action),
                                "by": entry.actorID.map { .string(emails[$0] ?? String($0)) } ?? .null, "changes": entry.changes,
                            ]).serialized)
                    }
                    return
                }
                guard !page.items.isEmpty else {
                    print("No history (the schedule was last changed before histories were kept).")
                    return
                }
                let rows = page.items.map { entry in
                    [
                        Timestamp.format(entry.at), entry.action, entry.actorID.map { emails[$0] ?? "user \($0)" } ?? "-",
                        Terminal.truncate(entry.changes.serialized, 100),
                    ]
                }
                print(Terminal.table(["AT", "ACTION", "BY", "CHANGES"], rows))
            }
        }
    }

    /// The schedule as the API shows it, its auth_token only as set or not.
    static func json(_ schedule: Schedule) -> JSONValue {
        let fields = schedule.fields
        return .object([
            "id": .string(schedule.id.lowercasedText),
            "enabled": .bool(fields.enabled),
            "cron_definition": fields.cronDefinition.map(JSONValue.string) ?? .null,
            "interval_definition": fields.intervalDefinition.map(JSONValue.string) ?? .null,
            "timezone": .string(fields.timezone),
            "endpoint": .string(fields.endpoint),
            "next_send_at": fields.nextSendAt.map { .string(Timestamp.format($0)) } ?? .null,
            "triggered": .int(schedule.triggered),
            "frequency": fields.frequency.map(JSONValue.int) ?? .null,
            "auth_token": .string(fields.authToken == nil ? "(none)" : "(set)"),
            "paused_note": fields.pausedNote.map(JSONValue.string) ?? .null,
            "paused_at": schedule.pausedAt.map { .string(Timestamp.format($0)) } ?? .null,
            "disabled_reason": schedule.disabledReason.map(JSONValue.string) ?? .null,
            "start_at": fields.window.start.map { .string(Timestamp.format($0)) } ?? .null,
            "end_at": fields.window.end.map { .string(Timestamp.format($0)) } ?? .null,
            "catchup_window": fields.catchupWindow.map(JSONValue.int) ?? .null,
            "overlap": .string(fields.overlap.rawValue),
            "jitter": .int(fields.jitter),
            "dst_gap": .string(fields.daylightSaving.gap.rawValue),
            "dst_overlap": .string(fields.daylightSaving.overlap.rawValue),
            "created_at": .string(Timestamp.format(schedule.createdAt)),
            "created_by": schedule.createdBy.map { .int(Int($0)) } ?? .null,
        ])
    }

    static func parse(_ text: String) throws -> UUID {
        guard let id = UUID(uuidString: text) else { throw ValidationError("'\(text)' is not a schedule id (a UUID)") }
        return id
    }

    /// The id of the user with `email`, if one is given; an unknown email is an error.
    static func user(_ email: String?, _ users: UserStore) async throws -> Int64? {
        guard let email else { return nil }
        guard let user = try await users.user(email: email) else { throw fail("error: no user \(email)") }
        return user.id
    }

    /// Applies `body` to the schedule as a PATCH would (the same rules and messages).
    static func change(_ text: String, body: JSONObject, by email: String?) async throws -> Schedule {
        let id = try parse(text)
        return try await withStore { store, users, _ in
            let actor = try await user(email, users)
            do {
                guard
                    let schedule = try await store.update(
                        id: id, by: actor,
                        { existing in
                            try ScheduleValidation.fields(from: .object(body), existing: existing, partial: true, now: Date()).get()
                        })
                else { throw fail("error: no schedule \(id.lowercasedText)") }
                return schedule
            } catch let errors as FieldErrors {
                throw fail("error: " + errors.fields.map { "\($0.field): \($0.messages.joined(separator: " "))" }.joined(separator: "; "))
            }
        }
    }

    /// Runs `body` with the stores of the configured database; a database error is one line.
    static func withStore<T>(_ body: (ScheduleStore, UserStore, PostgresPool) async throws -> T) async throws -> T {
        let configuration = try loadConfiguration(requireSecret: false)
        let pool = PostgresPool(url: configuration.databaseURL, size: 1, logger: makeLogger("scheduler-ctl"))
        defer { pool.close() }
        do {
            return try await body(
                ScheduleStore(pool: pool, hookAuthToken: configuration.hookAuthToken),
                UserStore(pool: pool, minter: TokenMinter(secretKey: configuration.secretKey)), pool)
        } catch let exit as ExitCode {
            throw exit
        } catch {
            throw fail("error: \(error)")
        }
    }
}
