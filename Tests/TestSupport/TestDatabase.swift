import Foundation
import Logging
import Postgres
import SchedulerStore
import Testing

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
        let made = try url(database: String(name))
        Scratch.made?.add(database: made)
        return made
    }

    /// Drops a database `fresh` made (its connections ended first).
    public static func drop(_ url: String) async throws {
        guard let name = URLComponents(string: url)?.path.dropFirst(), name.hasPrefix("t_") else {
            throw TestSetupError("not a test database: \(url)")
        }
        let admin = try await PostgresConnection.connect(url: try adminURL, logger: logger)
        try await admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Runs `body` with a pool on a fresh database, dropped afterwards.
    public static func withFreshPool<T>(size: Int = 4, _ body: (PostgresPool) async throws -> T) async throws -> T {
        let url = try await fresh()
        let pool = PostgresPool(url: url, size: size, logger: logger)
        let result: T
        do {
            result = try await body(pool)
        } catch {
            pool.close()
            try? await drop(url)
            throw error
        }
        pool.close()
        try await drop(url)
        return result
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
    public static func freshURL() async throws -> String {
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        _ = try await rabbitmqctlOffPool(["add_vhost", name])
        _ = try await rabbitmqctlOffPool(["set_permissions", "-p", name, "guest", ".*", ".*", ".*"])
        let made = try baseURL + "/" + name
        Scratch.made?.add(virtualHost: made)
        return made
    }

    /// Deletes the virtual host of a URL `freshURL` made, with its queues.
    public static func deleteVirtualHost(of url: String) async throws {
        let vhost = String(url.split(separator: "/").last ?? "")
        guard vhost.hasPrefix("t_") else { throw TestSetupError("not a test virtual host: \(url)") }
        _ = try await rabbitmqctlOffPool(["delete_vhost", vhost])
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

    /// `rabbitmqctl` on a thread of its own. Every test that uses the broker runs it at its
    /// start and end, and each run takes a second or more (it starts an Erlang VM; several
    /// under load): waited for on the cooperative pool, which has a thread per core, two tests
    /// doing so held every thread, and the in-process receivers and servers of the tests
    /// beside them (which answer on that pool) did not answer within their 5 s.
    public static func rabbitmqctlOffPool(_ arguments: [String]) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try rabbitmqctl(arguments) }) }.start()
        }
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

/// The databases and virtual hosts the current test made, dropped when it ends (the
/// `.scratch` trait): leftovers would load the servers for every later test.
public struct Scratch: TestTrait, SuiteTrait, TestScoping {
    final class Made: @unchecked Sendable {
        private let lock = NSLock()
        private var databases: [String] = []
        private var virtualHosts: [String] = []

        func add(database url: String) { lock.withLock { databases.append(url) } }
        func add(virtualHost url: String) { lock.withLock { virtualHosts.append(url) } }
        func taken() -> (databases: [String], virtualHosts: [String]) {
            lock.withLock {
                defer { (databases, virtualHosts) = ([], []) }
                return (databases, virtualHosts)
            }
        }
    }

    @TaskLocal static var made: Made?

    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        guard testCase != nil else { return try await function() }
        let made = Made()
        do {
            try await Scratch.$made.withValue(made) { try await function() }
        } catch {
            await Self.drop(made)
            throw error
        }
        await Self.drop(made)
    }

    private static func drop(_ made: Made) async {
        let (databases, virtualHosts) = made.taken()
        for url in virtualHosts { try? await TestBroker.deleteVirtualHost(of: url) }
        for url in databases { try? await TestDatabase.drop(url) }
    }
}

extension Trait where Self == Scratch {
    /// Drops the databases and virtual hosts each test of the suite made when it ends.
    public static var scratch: Scratch { Scratch() }
}

/// The TLS side of the test servers `scripts/test` starts: a CA it made
/// (`SCHEDULER_TEST_TLS_DIR`: ca.crt, client.crt and .key, other-ca.crt), PostgreSQL with
/// `ssl = on` and RabbitMQ's amqps listener (`SCHEDULER_TEST_BROKER_TLS`), both with a
/// certificate for the name localhost.
public enum TestTLS {
    public static var directory: String {
        get throws {
            guard let path = ProcessInfo.processInfo.environment["SCHEDULER_TEST_TLS_DIR"], !path.isEmpty else {
                throw TestSetupError("SCHEDULER_TEST_TLS_DIR is not set: run the tests with scripts/test, which makes the certificates")
            }
            return path
        }
    }

    public static func file(_ name: String) throws -> String { try directory + "/" + name }

    /// `url` (a test database's) over TLS, verified against `ca` with `sslmode=verify-full`,
    /// reached as `host` (localhost, the certificate's name, by default).
    public static func databaseURL(_ url: String, host: String = "localhost", ca: String = "ca.crt") throws -> String {
        guard var components = URLComponents(string: url) else { throw TestSetupError("bad database URL \(url)") }
        components.host = host
        components.queryItems = [
            URLQueryItem(name: "sslmode", value: "verify-full"), URLQueryItem(name: "sslrootcert", value: try file(ca)),
        ]
        return components.string!
    }

    /// The amqps:// URL of the virtual host of `url` (a `TestBroker.freshURL()`), with `query`.
    public static func brokerURL(_ url: String, query: String) throws -> String {
        guard let base = ProcessInfo.processInfo.environment["SCHEDULER_TEST_BROKER_TLS"], !base.isEmpty else {
            throw TestSetupError("SCHEDULER_TEST_BROKER_TLS is not set: run the tests with scripts/test")
        }
        let vhost = String(url.split(separator: "/").last ?? "")
        return base + "/" + vhost + (query.isEmpty ? "" : "?" + query)
    }
}
