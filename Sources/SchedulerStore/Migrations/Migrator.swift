import Foundation
import Logging
import Postgres

/// Applies the numbered SQL files of `migrations/` (`0001_initial.sql`, ...) in order,
/// read from a folder or, by default, from the copy shipped inside the program
/// (`EmbeddedMigrations.swift`, made by `scripts/embed-migrations`),
/// each in a transaction of its own together with its row in `schema_migrations`, so a
/// failing file leaves nothing behind and a second run applies nothing. An advisory lock
/// keeps two migrators from racing.
public struct Migrator: Sendable {
    public struct Migration: Sendable, Equatable {
        public let version: Int
        public let name: String
        public let sql: String
    }

    public enum MigrationError: Error, CustomStringConvertible {
        case unreadableDirectory(String, String)
        case badFileName(String)
        case duplicateVersion(Int)
        case failed(version: Int, name: String, error: any Error)

        public var description: String {
            switch self {
            case .unreadableDirectory(let path, let reason): "cannot read migrations from \(path): \(reason)"
            case .badFileName(let name): "migration file \(name) is not named NNNN_name.sql"
            case .duplicateVersion(let version): "two migration files have number \(version)"
            case .failed(let version, let name, let error): "migration \(version) (\(name)) failed and was rolled back: \(error)"
            }
        }
    }

    /// The folder read, or nil for the migrations shipped inside the program.
    public let directory: String?
    let logger: Logger

    private static let lockKey = "7262001"

    public init(directory: String, logger: Logger) {
        self.directory = directory
        self.logger = logger
    }

    /// The migrations shipped inside the program: `migrate` works from any folder.
    public init(logger: Logger) {
        directory = nil
        self.logger = logger
    }

    public func migrations() throws -> [Migration] {
        guard let directory else {
            return try Self.parse(Self.embedded.map { ($0.name, $0.sql) })
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw MigrationError.unreadableDirectory(directory, "\(error.localizedDescription)")
        }
        var files: [(name: String, sql: String)] = []
        for name in names.sorted() where name.hasSuffix(".sql") {
            let path = (directory as NSString).appendingPathComponent(name)
            guard let sql = FileManager.default.contents(atPath: path).flatMap({ String(bytes: $0, encoding: .utf8) }) else {
                throw MigrationError.unreadableDirectory(path, "not a readable UTF-8 file")
            }
            files.append((name, sql))
        }
        return try Self.parse(files)
    }

    /// Files named `NNNN_name.sql` into migrations, in order of their numbers.
    static func parse(_ files: [(name: String, sql: String)]) throws -> [Migration] {
        var migrations: [Migration] = []
        for (name, sql) in files {
            let stem = name.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]) else {
                throw MigrationError.badFileName(name)
            }
            guard !migrations.contains(where: { $0.version == version }) else {
                throw MigrationError.duplicateVersion(version)
            }
            migrations.append(Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql))
        }
        return migrations.sorted { $0.version < $1.version }
    }

    /// Applies what is missing and returns the versions applied now.
    @discardableResult
    public func migrate(databaseURL: String) async throws -> [Migration] {
        let pending = try migrations()
        let connection = try await PostgresConnection.connect(url: databaseURL, applicationName: "scheduler-ctl migrate", logger: logger)
        try await connection.query("SELECT pg_advisory_lock($1)", [Self.lockKey])
        do {
            try await connection.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version     integer PRIMARY KEY,
                    name        text NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now()
                )
                """)
            let applied = Set(try await connection.query("SELECT version FROM schema_migrations").compactMap { $0[0].flatMap { Int($0) } })
            var done: [Migration] = []
            for migration in pending where !applied.contains(migration.version) {
                do {
                    try await connection.execute("BEGIN")
                    try await connection.execute(migration.sql)
                    try await connection.query(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [String(migration.version), migration.name])
                    try await connection.execute("COMMIT")
                } catch {
                    _ = try? await connection.execute("ROLLBACK")
                    throw MigrationError.failed(version: migration.version, name: migration.name, error: error)
                }
                logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
                done.append(migration)
            }
            try await connection.query("SELECT pg_advisory_unlock($1)", [Self.lockKey])
            return done
        } catch {
            _ = try? await connection.query("SELECT pg_advisory_unlock($1)", [Self.lockKey])
            throw error
        }
    }
}
