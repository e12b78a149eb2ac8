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
        abstract: "Operate the Seed Scheduler: migrations, API tokens, queue depths, dead letters, receivers and the delivery history.",
        discussion: """
            Settings come from the environment, as for the other programs: SCHEDULER_DATABASE \
            (PostgreSQL URL), BROKER_URL (RabbitMQ URL) and SECRET_KEY (tokens are derived from it).
            """,
        version: SchedulerVersion.current,
        subcommands: [
            Migrate.self, CreateAdmin.self, CreateToken.self, RevokeToken.self, RotateToken.self, Queues.self, DeadLetters.self,
            Receivers.self, MaintainHistory.self, QuotaCommand.self, Schedules.self, Probe.self, ImportOriginal.self,
        ]
    )

    public init() {}
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

/// `--email`: the user a command is about.
struct UserEmail: ParsableArguments {
    @Option(help: "The user's email address.")
    var email: String

    func validate() throws {
        guard ScheduleValidation.isEmail(email) else { throw ValidationError("'\(email)' is not a valid email address") }
    }
}

/// The token of the user with `email`, created if new.
func issue(email: String, admin: Bool) async throws -> String {
    try await withUserStore { try await $0.issueToken(email: email, admin: admin).token }
}

/// Runs `body` with the users' store of the configured database; a database error is one line.
func withUserStore<T>(_ body: (UserStore) async throws -> T) async throws -> T {
    let configuration = try loadConfiguration()
    let pool = PostgresPool(url: configuration.databaseURL, size: 1, logger: makeLogger("scheduler-ctl"))
    defer { pool.close() }
    do {
        return try await body(UserStore(pool: pool, minter: TokenMinter(secretKey: configuration.secretKey)))
    } catch let exit as ExitCode {
        throw exit
    } catch {
        throw fail("error: \(error)")
    }
}

/// Writes `message` to standard error; throw the result to exit with status 1.
func fail(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    return ExitCode.failure
}
