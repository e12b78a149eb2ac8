import ArgumentParser
import Foundation
import Logging
import Postgres
import SchedulerCore
import SchedulerStore

/// `scheduler-ctl`: the operator's commands.
public struct SchedulerCtl: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "scheduler-ctl",
        abstract: "Operate the Seed Scheduler: migrations, API tokens, queue depths and dead letters.",
        discussion: """
            Settings come from the environment, as for the other programs: SCHEDULER_DATABASE \
            (PostgreSQL URL), BROKER_URL (RabbitMQ URL) and SECRET_KEY (tokens are derived from it).
            """,
        version: SchedulerVersion.current,
        subcommands: [Migrate.self, CreateAdmin.self, CreateToken.self, Queues.self, DeadLetters.self]
    )

    public init() {}

    /// Parses the command line and runs the chosen command, exiting as ArgumentParser does.
    public static func runMain(_ arguments: [String]? = nil) async {
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// Reads the configuration or stops with one clear line.
func loadConfiguration(requireSecret: Bool = true) throws -> Configuration {
    do {
        return try Configuration(requireSecret: requireSecret)
    } catch {
        throw ValidationError("configuration error: \(error)")
    }
}

func makeLogger(_ label: String) -> Logger {
    var logger = Logger(label: label) { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = .warning
    return logger
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the migrations (numbered SQL files) that are not applied yet.",
        discussion: """
            The migrations ship inside this program, so it works from any folder; --directory (or \
            $SCHEDULER_MIGRATIONS) reads NNNN_name.sql files from a folder instead. Each file runs in a \
            transaction of its own: a failing file leaves nothing behind. Running it again is safe.
            """)

    @Option(help: "A folder of NNNN_name.sql files to apply instead of the shipped ones (default: $SCHEDULER_MIGRATIONS).")
    var directory: String?

    @Option(help: "The PostgreSQL URL (default: $SCHEDULER_DATABASE).")
    var database: String?

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let folder = directory ?? environment["SCHEDULER_MIGRATIONS"].flatMap { $0.isEmpty ? nil : $0 }
        let url = database ?? environment["SCHEDULER_DATABASE"] ?? Configuration.defaultDatabaseURL
        let logger = makeLogger("scheduler-ctl")
        let migrator = folder.map { Migrator(directory: $0, logger: logger) } ?? Migrator(logger: logger)
        do {
            let applied = try await migrator.migrate(databaseURL: url)
            if applied.isEmpty {
                print("Database is up to date.")
            } else {
                for migration in applied { print("Applied \(migration.version) \(migration.name)") }
            }
        } catch {
            throw fail("error: \(error)")
        }
    }
}

struct CreateAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create an admin user (or make an existing user admin) and print its API token.",
        discussion: "An admin may call POST /api/v1/user/token/ to issue tokens for others.")

    @Option(help: "The admin's email address.")
    var email: String

    func validate() throws {
        guard ScheduleValidation.isEmail(email) else { throw ValidationError("'\(email)' is not a valid email address") }
    }

    func run() async throws {
        print(try await issue(email: email, admin: true))
    }
}

struct CreateToken: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a user if new and print its API token (the same token each time).")

    @Option(help: "The user's email address.")
    var email: String

    func validate() throws {
        guard ScheduleValidation.isEmail(email) else { throw ValidationError("'\(email)' is not a valid email address") }
    }

    func run() async throws {
        print(try await issue(email: email, admin: false))
    }
}

/// The token of the user with `email`, created if new.
func issue(email: String, admin: Bool) async throws -> String {
    let configuration = try loadConfiguration()
    let pool = PostgresPool(url: configuration.databaseURL, size: 1, logger: makeLogger("scheduler-ctl"))
    defer { pool.close() }
    do {
        return try await UserStore(pool: pool, minter: TokenMinter(secretKey: configuration.secretKey))
            .issueToken(email: email, admin: admin).token
    } catch {
        throw fail("error: \(error)")
    }
}

/// Writes `message` to standard error; throw the result to exit with status 1.
func fail(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    return ExitCode.failure
}
