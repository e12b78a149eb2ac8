import Logging
import ServiceLifecycle
import Synchronization

/// A fixed-size pool of connections for a server: each task takes a connection, has it
/// to itself, and gives it back. Connections are opened on demand; a broken one (or one
/// left inside a transaction) is closed instead of being reused, so the pool heals
/// itself after PostgreSQL restarts.
public final class PostgresPool: Service, Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<PostgresConnection?, any Error>
    }

    private struct State {
        var idle: [PostgresConnection] = []
        var open = 0
        var waiters: [Waiter] = []
        var nextWaiterID: UInt64 = 0
        var closed = false

        mutating func removeFirstWaiter() -> CheckedContinuation<PostgresConnection?, any Error>? {
            waiters.isEmpty ? nil : waiters.removeFirst().continuation
        }
    }

    public let url: String
    public let size: Int
    /// Seconds a task waits for a free connection before `PostgresError.Kind.busy`; nil: no limit.
    public let checkoutTimeout: Double?
    /// Seconds the server lets a statement run (`statement_timeout`); nil: the server's default.
    public let statementTimeout: Double?
    /// More server settings for each connection's session (see `PostgresConnection.connect`).
    public let settings: [String: String]
    private let logger: Logger
    private let state = Mutex(State())
    /// Run on each connection the pool opens, before its first use (set by `warm`).
    private let onOpen = Mutex<(@Sendable (PostgresConnection) async throws -> Void)?>(nil)

    public init(
        url: String, size: Int, checkoutTimeout: Double? = nil, statementTimeout: Double? = nil, settings: [String: String] = [:],
        logger: Logger
    ) {
        // A programming error, not input: every caller passes a validated setting or a literal.
        precondition(size > 0, "a pool needs at least one connection")
        self.url = url
        self.size = size
        self.checkoutTimeout = checkoutTimeout
        self.statementTimeout = statementTimeout
        self.settings = settings
        self.logger = logger
    }

    /// Runs `body` with a connection of its own.
    public func withConnection<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await checkout()
        do {
            let result = try await body(connection)
            checkin(connection)
            return result
        } catch {
            checkin(connection)
            throw error
        }
    }

    /// Opens every connection the pool may still open and runs `body` once on each of its
    /// connections, all at once, then gives them back: a program calls it when it starts, so
    /// that its first requests find connections open, their statements prepared and the
    /// server's caches of the tables they read loaded (a first read of a partitioned table on
    /// a new connection costs milliseconds, a warm one a tenth of one). Tasks that need a
    /// connection meanwhile wait as usual. A connection that cannot be opened, or whose `body`
    /// fails, is logged, not thrown: the pool opens it on demand later. The pool keeps `body`
    /// (the last one given) and runs it on every connection it opens from then on, before
    /// that connection's first use (after PostgreSQL restarted, say).
    public func warm(_ body: @escaping @Sendable (PostgresConnection) async throws -> Void) async {
        onOpen.withLock { $0 = body }
        let (idle, missing) = state.withLock { state -> ([PostgresConnection], Int) in
            guard !state.closed else { return ([], 0) }
            let idle = state.idle
            state.idle = []
            let missing = size - state.open
            state.open = size
            return (idle, missing)
        }
        let (url, statementTimeout, settings, logger) = (url, statementTimeout, settings, logger)
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<(idle.count + missing) {
                group.addTask { [self] in
                    let connection: PostgresConnection
                    if index < idle.count {
                        connection = idle[index]
                    } else {
                        do {
                            connection = try await PostgresConnection.connect(
                                url: url, statementTimeout: statementTimeout, settings: settings, logger: logger)
                        } catch {
                            logger.warning("cannot open a PostgreSQL connection ahead of use", metadata: ["error": "\(error)"])
                            releaseSlot()
                            return
                        }
                    }
                    do {
                        try await body(connection)
                    } catch {
                        logger.warning("cannot warm a PostgreSQL connection", metadata: ["error": "\(error)"])
                    }
                    checkin(connection)
                }
            }
        }
    }

    /// Runs `body` inside `BEGIN ... COMMIT`; any error rolls the whole transaction back.
    ///
    /// A transaction PostgreSQL aborted to break a deadlock (SQLSTATE 40P01: two writers
    /// each waiting for a row the other holds) is run again, three times at most in all, so
    /// the caller sees the deadlock only when it keeps happening. `body` must therefore do
    /// nothing outside the database that a rolled-back run should not have done.
    public func withTransaction<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await transaction(body)
            } catch let error as PostgresError where error.code == "40P01" && attempt < Self.deadlockAttempts {
                attempt += 1
                logger.info("a transaction was chosen to break a deadlock; running it again", metadata: ["attempt": "\(attempt)"])
            }
        }
    }

    /// Runs of a transaction at most when PostgreSQL keeps choosing it to break a deadlock.
    public static let deadlockAttempts = 3

    private func transaction<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await withConnection { connection in
            try await connection.execute("BEGIN")
            do {
                let result = try await body(connection)
                try await connection.execute("COMMIT")
                return result
            } catch {
                _ = try? await connection.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// One statement on any free connection.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) async throws -> PostgresRows {
        try await withConnection { try await $0.query(sql, parameters) }
    }

    /// One prepared statement on any free connection.
    @discardableResult
    public func query(_ statement: PreparedStatement, _ parameters: [String?] = []) async throws -> PostgresRows {
        try await withConnection { try await $0.query(statement, parameters) }
    }

    /// Checks that the server answers (a round trip on a pooled connection).
    public func ping() async throws {
        try await query("SELECT 1")
    }

    /// Closes idle connections and refuses new work; connections in use close when returned.
    public func close() {
        let (idle, waiters) = state.withLock { state in
            state.closed = true
            defer {
                state.idle = []
                state.waiters = []
            }
            state.open -= state.idle.count
            return (state.idle, state.waiters)
        }
        _ = idle  // closed as they are released here
        for waiter in waiters { waiter.continuation.resume(throwing: PostgresError(kind: .closed, message: "the pool is closed")) }
    }

    private enum Checkout {
        case reuse(PostgresConnection)
        case open
        case wait
        case closed
    }

    private func checkout() async throws -> PostgresConnection {
        while true {
            let decision: Checkout = state.withLock { state in
                if state.closed { return .closed }
                if let connection = state.idle.popLast() { return .reuse(connection) }
                if state.open < size {
                    state.open += 1
                    return .open
                }
                return .wait
            }
            switch decision {
            case .closed:
                throw PostgresError(kind: .closed, message: "the pool is closed")
            case .reuse(let connection):
                return connection
            case .open:
                let connection: PostgresConnection
                do {
                    connection = try await PostgresConnection.connect(
                        url: url, statementTimeout: statementTimeout, settings: settings, logger: logger)
                } catch {
                    releaseSlot()
                    throw error
                }
                if let warm = onOpen.withLock({ $0 }) {
                    do {
                        try await warm(connection)
                    } catch {
                        logger.warning("cannot warm a PostgreSQL connection", metadata: ["error": "\(error)"])
                    }
                }
                return connection
            case .wait:
                let id = state.withLock { state in
                    state.nextWaiterID += 1
                    return state.nextWaiterID
                }
                // A waiter still waiting at the deadline is taken out and told the pool is busy.
                let deadline = checkoutTimeout.map { timeout in
                    Task { [self] in
                        try await Task.sleep(for: .milliseconds(Int(timeout * 1000)))
                        let waiter = state.withLock { state in
                            state.waiters.firstIndex { $0.id == id }.map { state.waiters.remove(at: $0).continuation }
                        }
                        waiter?.resume(
                            throwing: PostgresError(kind: .busy, message: "no free database connection within \(timeout) s"))
                    }
                }
                defer { deadline?.cancel() }
                let handed: PostgresConnection? = try await withCheckedThrowingContinuation { continuation in
                    let resumeNow: Bool = state.withLock { state in
                        // A slot may have opened between the decision and now.
                        if state.closed || !state.idle.isEmpty || state.open < size { return true }
                        state.waiters.append(Waiter(id: id, continuation: continuation))
                        return false
                    }
                    if resumeNow { continuation.resume(returning: nil) }
                }
                if let handed { return handed }
            }
        }
    }

    private func checkin(_ connection: PostgresConnection) {
        let healthy = connection.isHealthy
        let lost = connection.isLost
        typealias Continuation = CheckedContinuation<PostgresConnection?, any Error>
        // Waiters told to open a connection of their own (nil), and one handed this one.
        let (freed, handed, stale): ([Continuation], Continuation?, [PostgresConnection]) = state.withLock { state in
            var freed: [Continuation] = []
            // A lost connection most often means the server restarted or failed over: the
            // idle ones opened before are as dead, and would each fail one more request.
            let stale = lost ? state.idle : []
            if lost {
                state.idle = []
                state.open -= stale.count
                for _ in stale { if let waiter = state.removeFirstWaiter() { freed.append(waiter) } }
            }
            if !healthy || state.closed {
                state.open -= 1
                // The freed slot goes to a waiter, who opens a new connection.
                if !state.closed, let waiter = state.removeFirstWaiter() { freed.append(waiter) }
                return (freed, nil, stale)
            }
            if let waiter = state.removeFirstWaiter() { return (freed, waiter, stale) }
            state.idle.append(connection)
            return (freed, nil, stale)
        }
        if !healthy { logger.info("dropping a broken PostgreSQL connection", metadata: ["idle.dropped": "\(stale.count)"]) }
        _ = stale  // closed as they are released here
        for waiter in freed { waiter.resume(returning: nil) }
        handed?.resume(returning: connection)
    }

    private func releaseSlot() {
        let waiter = state.withLock { state in
            state.open -= 1
            return state.removeFirstWaiter()
        }
        waiter?.resume(returning: nil)
    }
}

extension PostgresPool {
    /// As a service, the pool lives until the program shuts down, then closes. Put it first
    /// in a `ServiceGroup`: services stop in reverse order, so it closes after its users.
    public func run() async throws {
        try? await gracefulShutdown()
        close()
    }
}
