internal import CLibPQ
import Dispatch
import Foundation
import Logging
import Synchronization

/// One libpq connection (`PGconn`).
///
/// `@unchecked Sendable` is safe because every libpq call on the handle runs on `queue`,
/// a serial queue that belongs to this connection alone: the handle is never used by two
/// threads at once. The async methods hop onto that queue, so the blocking calls never run
/// on Swift's cooperative pool or on an event loop. Callers that need several statements
/// in a row (a transaction) take the connection from a `PostgresPool`, which hands it to
/// one task at a time.
public final class PostgresConnection: @unchecked Sendable {
    private let handle: OpaquePointer
    private let queue: DispatchQueue
    private let logger: Logger
    /// Whether the last statement left the connection usable and outside a transaction;
    /// written on `queue` after every statement, read by the pool without waiting on it.
    private let healthy = Mutex(true)
    private let lost = Mutex(false)
    /// The server-side name of each statement prepared on this connection, by its text;
    /// read and written only on `queue`.
    nonisolated(unsafe) private var preparedNames: [String: String] = [:]
    nonisolated(unsafe) private var preparedCount = 0

    private init(handle: OpaquePointer, queue: DispatchQueue, logger: Logger) {
        self.handle = handle
        self.queue = queue
        self.logger = logger
    }

    deinit {
        PQfinish(handle)
    }

    /// Connects with a libpq URL (`postgres://user:password@host:port/database?sslmode=...`).
    /// Sessions use UTC and ISO dates, so timestamps come back as `2026-01-02 03:04:05+00`.
    ///
    /// TCP keepalives (probes after 5 s idle, every 2 s, 3 missed) and a TCP user timeout
    /// of 10 s make a connection whose server vanished fail within seconds instead of
    /// hanging; `statementTimeout` (seconds) makes the server cancel a statement that runs
    /// longer. `settings` are more server settings for the session (`name=value`, as
    /// `statement_timeout`: given when connecting, so a connection pooler that does not pass
    /// them on drops them instead of leaving them on a server connection others share). The
    /// URL may override any of them.
    public static func connect(
        url: String, applicationName: String = "seed-scheduler", statementTimeout: Double? = nil, settings: [String: String] = [:],
        logger: Logger
    ) async throws -> PostgresConnection {
        let queue = DispatchQueue(label: "postgres.connection")
        return try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(
                    with: Result {
                        try connectBlocking(
                            url: url, applicationName: applicationName, statementTimeout: statementTimeout, settings: settings,
                            queue: queue, logger: logger)
                    })
            }
        }
    }

    private static func connectBlocking(
        url: String, applicationName: String, statementTimeout: Double?, settings: [String: String], queue: DispatchQueue,
        logger: Logger
    ) throws -> PostgresConnection {
        // Earlier keywords are defaults: whatever the URL says overrides them.
        var keywords = [
            "connect_timeout", "application_name", "client_encoding", "keepalives", "keepalives_idle", "keepalives_interval",
            "keepalives_count", "tcp_user_timeout",
        ]
        var values = ["5", applicationName, "UTF8", "1", "5", "2", "3", "10000"]
        var options = settings.sorted { $0.key < $1.key }.map { name, value in
            // Names and values of the programs' own constants: nothing to escape in them.
            precondition(
                (name + value).utf8.allSatisfy {
                    $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || (0x30...0x39).contains($0) || (0x61...0x7A).contains($0)
                },
                "a session setting is a lower-case name and a plain value")
            return "-c \(name)=\(value)"
        }
        if let statementTimeout {
            options.append("-c statement_timeout=\(Int(min(max(statementTimeout, 0.001), 86_400) * 1000))")
        }
        if !options.isEmpty {
            keywords.append("options")
            values.append(options.joined(separator: " "))
        }
        keywords.append("dbname")
        values.append(url)
        let handle: OpaquePointer? = withCStringArray(keywords) { keywordPointers in
            withCStringArray(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let handle else {
            throw PostgresError(kind: .connection, message: "libpq could not allocate a connection")
        }
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(handle))
            PQfinish(handle)
            throw PostgresError(kind: .connection, message: message)
        }
        // Server notices ("relation already exists, skipping") are not errors: keep them off stderr.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
        let connection = PostgresConnection(handle: handle, queue: queue, logger: logger)
        _ = try connection.executeBlocking("SET TimeZone TO 'UTC'; SET DateStyle TO 'ISO, YMD'; SET IntervalStyle TO 'iso_8601'")
        return connection
    }

    /// False once the server went away; a pool drops such a connection instead of reusing it.
    public var isHealthy: Bool { healthy.withLock { $0 } }

    /// True once the connection to the server broke (not merely left inside a transaction).
    public var isLost: Bool { lost.withLock { $0 } }

    /// Runs one statement with `$1, $2, ...` parameters, passed as text (nil is NULL).
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) async throws -> PostgresRows {
        try await onQueue { try self.queryBlocking(sql, parameters) }
    }

    /// Runs a script of several statements without parameters (migrations, `SET`), in
    /// one round trip; a failure stops the script.
    @discardableResult
    public func execute(_ script: String) async throws -> PostgresRows {
        try await onQueue { try self.executeBlocking(script) }
    }

    /// Runs a statement prepared on this connection: the server parses and plans it the
    /// first time (`PQprepare`) and then runs it by name, so a statement that runs often
    /// skips parsing and, once the server settles on a generic plan, planning too.
    @discardableResult
    public func query(_ statement: PreparedStatement, _ parameters: [String?] = []) async throws -> PostgresRows {
        try await onQueue { try self.queryPreparedBlocking(statement, parameters) }
    }

    func onQueue<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// The handle, for the other blocking helpers of this module; only on `queue`.
    func withHandle<T>(_ body: (OpaquePointer) throws -> T) rethrows -> T {
        dispatchPrecondition(condition: .onQueue(queue))
        return try body(handle)
    }

    func queryBlocking(_ sql: String, _ parameters: [String?]) throws -> PostgresRows {
        dispatchPrecondition(condition: .onQueue(queue))
        try Self.refuseNUL(in: parameters)
        let result: OpaquePointer? = withOptionalCStringArray(parameters) { pointers in
            PQexecParams(handle, sql, Int32(parameters.count), nil, pointers, nil, nil, 0)
        }
        return try consume(result)
    }

    func queryPreparedBlocking(_ statement: PreparedStatement, _ parameters: [String?]) throws -> PostgresRows {
        dispatchPrecondition(condition: .onQueue(queue))
        try Self.refuseNUL(in: parameters)
        let name: String
        if let known = preparedNames[statement.sql] {
            name = known
        } else {
            preparedCount += 1
            name = "scheduler_\(preparedCount)"
            _ = try consume(PQprepare(handle, name, statement.sql, Int32(parameters.count), nil))
            preparedNames[statement.sql] = name
        }
        let result: OpaquePointer? = withOptionalCStringArray(parameters) { pointers in
            PQexecPrepared(handle, name, Int32(parameters.count), pointers, nil, nil, 0)
        }
        do {
            return try consume(result)
        } catch let error as PostgresError where error.code == "0A000" || error.code == "26000" {
            // The table changed under the plan ("cached plan must not change result type") or
            // the session's statements were dropped: prepare it again on its next use.
            preparedNames[statement.sql] = nil
            throw error
        }
    }

    /// A text parameter is a C string: a NUL would cut it short, so it is refused instead.
    private static func refuseNUL(in parameters: [String?]) throws {
        if parameters.contains(where: { $0?.utf8.contains(0) == true }) {
            throw PostgresError(kind: .query, code: "22021", message: "a text parameter contains a NUL character")
        }
    }

    func executeBlocking(_ script: String) throws -> PostgresRows {
        dispatchPrecondition(condition: .onQueue(queue))
        return try consume(PQexec(handle, script))
    }

    private func consume(_ result: OpaquePointer?) throws -> PostgresRows {
        defer {
            let connected = PQstatus(handle) == CONNECTION_OK
            let usable = connected && PQtransactionStatus(handle) == PQTRANS_IDLE
            healthy.withLock { $0 = usable }
            lost.withLock { $0 = !connected }
        }
        guard let result else {
            throw PostgresError(kind: .connection, message: String(cString: PQerrorMessage(handle)))
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return Self.rows(of: result)
        default:
            let code = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            let message = String(cString: PQresultErrorMessage(result))
            let broken = PQstatus(handle) != CONNECTION_OK
            if broken { logger.warning("PostgreSQL connection lost", metadata: ["error": "\(message)"]) }
            throw PostgresError(kind: broken ? .connection : .query, code: code, message: message)
        }
    }

    private static func rows(of result: OpaquePointer) -> PostgresRows {
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        var columns: [String] = []
        var columnIndex: [String: Int] = [:]
        for column in 0..<columnCount {
            let name = String(cString: PQfname(result, Int32(column)))
            columns.append(name)
            if columnIndex[name] == nil { columnIndex[name] = column }
        }
        var rows: [PostgresRow] = []
        rows.reserveCapacity(rowCount)
        for row in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(columnCount)
            for column in 0..<columnCount {
                if PQgetisnull(result, Int32(row), Int32(column)) == 1 {
                    values.append(nil)
                } else {
                    values.append(String(cString: PQgetvalue(result, Int32(row), Int32(column))))
                }
            }
            rows.append(PostgresRow(values: values, columnIndex: columnIndex))
        }
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return PostgresRows(columns: columns, rows: rows, affectedRows: affected)
    }
}

/// A statement a connection prepares once and then runs by name (see
/// `PostgresConnection.query(_:_:)`): for the statements a program runs many times a
/// second. Each distinct text is prepared once per connection, so the text must not vary
/// (values go in parameters).
public struct PreparedStatement: Sendable, Hashable {
    public let sql: String

    public init(_ sql: String) {
        self.sql = sql
    }
}

/// Calls `body` with a C array of C strings that lives for the call.
func withCStringArray<T>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> T) -> T {
    withOptionalCStringArray(strings.map(Optional.some) + [nil], body)
}

/// Calls `body` with a C array of C strings (NULL for nil) that lives for the call.
func withOptionalCStringArray<T>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> T) -> T {
    // strdup fails only when memory is exhausted, where Swift itself would trap anyway.
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0)! } }
    defer { copies.forEach { free($0) } }
    let pointers = copies.map { UnsafePointer($0) }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress) }
}
