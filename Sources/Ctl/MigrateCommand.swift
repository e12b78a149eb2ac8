import ArgumentParser
import Foundation
import Logging
import Postgres
import SchedulerCore
import SchedulerStore

/// `scheduler-ctl migrate`.
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
