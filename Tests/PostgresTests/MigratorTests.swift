import Foundation
import Postgres
import SchedulerStore
import TestSupport
import Testing

@Suite("Migrations")
struct MigratorTests {
    func emptyDatabase() async throws -> String {
        let name = "m_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        let admin = try await PostgresConnection.connect(url: try TestDatabase.adminURL, logger: TestDatabase.logger)
        try await admin.execute("CREATE DATABASE \(name)")
        return try TestDatabase.url(database: name)
    }

    func folder(_ files: [String: String]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("migrations-\(UUID())").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for (name, sql) in files { try sql.write(toFile: path + "/" + name, atomically: true, encoding: .utf8) }
        return path
    }

    @Test("the project's migrations apply in order, and a second run applies nothing")
    func idempotent() async throws {
        let url = try await emptyDatabase()
        let migrator = Migrator(directory: TestDatabase.migrationsDirectory, logger: TestDatabase.logger)
        let first = try await migrator.migrate(databaseURL: url)
        #expect(first.map(\.version) == (try migrator.migrations()).map(\.version))
        #expect(first.first?.version == 1)
        #expect(try await migrator.migrate(databaseURL: url).isEmpty)
        let connection = try await PostgresConnection.connect(url: url, logger: TestDatabase.logger)
        #expect(try await connection.query("SELECT count(*) FROM schedules").first?[0] == "0")
    }

    @Test("two migrators at once: the advisory lock lets one apply each migration, the other waits and applies nothing")
    func concurrent() async throws {
        let url = try await emptyDatabase()
        // A slow first migration, so that the second migrator arrives while it runs.
        let path = try folder([
            "0001_slow.sql": "SELECT pg_sleep(1); CREATE TABLE once (x int); INSERT INTO once VALUES (1);",
            "0002_more.sql": "INSERT INTO once VALUES (2);",
        ])
        let migrator = Migrator(directory: path, logger: TestDatabase.logger)
        async let first = migrator.migrate(databaseURL: url)
        try await Task.sleep(for: .milliseconds(200))
        async let second = migrator.migrate(databaseURL: url)
        let applied = try await [first, second]
        #expect(applied.map(\.count).sorted() == [0, 2], "one applied both, the other none")
        let connection = try await PostgresConnection.connect(url: url, logger: TestDatabase.logger)
        #expect(try await connection.query("SELECT count(*) FROM once").first?[0] == "2", "each migration ran once")
    }

    @Test("the migrations shipped inside the program are migrations/ exactly (else run scripts/embed-migrations)")
    func shippedMatchFolder() throws {
        let shipped = try Migrator(logger: TestDatabase.logger).migrations()
        let folder = try Migrator(directory: TestDatabase.migrationsDirectory, logger: TestDatabase.logger).migrations()
        #expect(shipped.map(\.version) == folder.map(\.version))
        #expect(shipped.map(\.name) == folder.map(\.name))
        // A multi-line string literal drops the file's last line break.
        #expect(shipped.map { $0.sql } == folder.map { $0.sql.hasSuffix("\n") ? String($0.sql.dropLast()) : $0.sql })
    }

    @Test("a failing migration rolls back whole and stops the run")
    func rollback() async throws {
        let url = try await emptyDatabase()
        let directory = try folder([
            "0001_one.sql": "CREATE TABLE one (x int);",
            "0002_two.sql": "CREATE TABLE two (x int); INSERT INTO two VALUES (1); SELECT no_such_function();",
            "0003_three.sql": "CREATE TABLE three (x int);",
        ])
        let migrator = Migrator(directory: directory, logger: TestDatabase.logger)
        await #expect {
            try await migrator.migrate(databaseURL: url)
        } throws: { error in
            "\(error)".contains("migration 2 (two) failed and was rolled back")
        }
        let connection = try await PostgresConnection.connect(url: url, logger: TestDatabase.logger)
        let tables = try await connection.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
        ).map { $0[0] ?? "" }
        #expect(tables == ["one", "schema_migrations"])
        #expect(try await connection.query("SELECT version FROM schema_migrations").map { $0[0] } == ["1"])

        // Fixed, the run picks up where it stopped.
        try "CREATE TABLE two (x int);".write(toFile: directory + "/0002_two.sql", atomically: true, encoding: .utf8)
        #expect(try await migrator.migrate(databaseURL: url).map(\.version) == [2, 3])
    }

    @Test("badly named files are refused before anything runs")
    func badNames() throws {
        let migrator = Migrator(directory: try folder(["first.sql": "SELECT 1;"]), logger: TestDatabase.logger)
        #expect(throws: Migrator.MigrationError.self) { try migrator.migrations() }
    }
}
