import Foundation
import Logging
import Postgres
import SchedulerStore

/// Fresh, migrated databases on the test PostgreSQL that `scripts/test` starts
/// (`SCHEDULER_TEST_DATABASE`, a URL of its maintenance database). Each test that writes
/// gets a database of its own, copied from a migrated template, so tests run in parallel.
public enum TestDatabase {
    public static let logger: Logger = {
        var logger = Logger(label: "tests")
        logger.logLevel = .warning
        return logger
    }()

    /// The URL of the test server's maintenance database.
    public static var adminURL: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["SCHEDULER_TEST_DATABASE"], !url.isEmpty else {
                throw TestSetupError(
                    "SCHEDULER_TEST_DATABASE is not set: run the tests with scripts/test, which starts PostgreSQL")
            }
            return url
        }
    }

    /// The URL of database `name` on the test server.
    public static func url(database name: String) throws -> String {
        guard var components = URLComponents(string: try adminURL) else { throw TestSetupError("bad SCHEDULER_TEST_DATABASE") }
        components.path = "/" + name
        return components.string!
    }

    /// A new database with every migration applied.
    public static func fresh() async throws -> String {
        let template = try await Template.shared.name()
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
        let admin = try await PostgresConnection.connect(url: try adminURL, logger: logger)
        try await admin.execute("CREATE DATABASE \(name) TEMPLATE \(template)")
        return try url(database: String(name))
    }

    /// A pool on a fresh database.
    public static func freshPool(size: Int = 4) async throws -> PostgresPool {
        PostgresPool(url: try await fresh(), size: size, logger: logger)
    }

    /// The repository's `migrations/` folder.
    public static var migrationsDirectory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("migrations").path
    }

    /// Migrates a template database once per test run, named after the migrations' content.
    actor Template {
        static let shared = Template()
        private var task: Task<String, any Error>?

        func name() async throws -> String {
            if let task { return try await task.value }
            let task = Task { try await Self.create() }
            self.task = task
            return try await task.value
        }

        private static func create() async throws -> String {
            let migrator = Migrator(directory: migrationsDirectory, logger: logger)
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for migration in try migrator.migrations() {
                for byte in "\(migration.version)\(migration.sql)".utf8 {
                    hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
                }
            }
            let name = "template_\(String(hash, radix: 16))"
            let admin = try await PostgresConnection.connect(url: try adminURL, logger: logger)
            try await admin.query("SELECT pg_advisory_lock(42)")
            defer { Task { try? await admin.query("SELECT pg_advisory_unlock(42)") } }
            let exists = try await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]).count == 1
            if !exists {
                try await admin.execute("CREATE DATABASE \(name)")
                try await migrator.migrate(databaseURL: try url(database: name))
            }
            return name
        }
    }
}

public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Where SwiftPM put the built executables (next to the test bundle).
public var productsDirectory: URL {
    var url = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    if url.lastPathComponent.hasSuffix(".xctest") { url = url.deletingLastPathComponent() }
    return url
}

/// Virtual hosts on the test RabbitMQ that `scripts/test` starts (`SCHEDULER_TEST_BROKER`,
/// a URL without a virtual host, and `SCHEDULER_TEST_RABBITMQCTL`, a rabbitmqctl for it):
/// each test that uses the broker gets a virtual host of its own, so queues are not shared.
public enum TestBroker {
    public static var baseURL: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["SCHEDULER_TEST_BROKER"], !url.isEmpty else {
                throw TestSetupError("SCHEDULER_TEST_BROKER is not set: run the tests with scripts/test, which starts RabbitMQ")
            }
            return url
        }
    }

    /// The URL of a new, empty virtual host.
    public static func freshURL() throws -> String {
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        _ = try rabbitmqctl(["add_vhost", name])
        _ = try rabbitmqctl(["set_permissions", "-p", name, "guest", ".*", ".*", ".*"])
        return try baseURL + "/" + name
    }

    /// Messages of `queue` in the virtual host of `url` that consumers hold unacknowledged,
    /// and that are ready (rabbitmqctl: AMQP does not report the first); zeros while the
    /// queue is not declared.
    public static func counts(of queue: String, url: String) throws -> (unacked: Int, ready: Int) {
        let vhost = String(url.split(separator: "/").last ?? "")
        let output = try rabbitmqctl(["list_queues", "-p", vhost, "name", "messages_unacknowledged", "messages_ready"])
        for line in output.split(separator: "\n") {
            let columns = line.split(separator: "\t")
            if columns.count == 3, columns[0] == queue { return (Int(columns[1]) ?? 0, Int(columns[2]) ?? 0) }
        }
        return (0, 0)
    }

    /// Runs the test broker's rabbitmqctl and returns its output; throws when it fails.
    public static func rabbitmqctl(_ arguments: [String]) throws -> String {
        guard let control = ProcessInfo.processInfo.environment["SCHEDULER_TEST_RABBITMQCTL"] else {
            throw TestSetupError("SCHEDULER_TEST_RABBITMQCTL is not set: run the tests with scripts/test")
        }
        return try runTool(control, arguments)
    }
}

/// Runs a helper program of the test setup (rabbitmqctl, the PostgreSQL and cluster
/// wrappers of scripts/test) and returns its standard output; throws when it fails.
public func runTool(_ path: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TestSetupError("\((path as NSString).lastPathComponent) \(arguments) failed with status \(process.terminationStatus)")
    }
    return String(decoding: data, as: UTF8.self)
}
