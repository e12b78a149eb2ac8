internal import CLibPQ
import Foundation
import Logging
import Synchronization

/// LISTEN on a connection of its own and wait for NOTIFY with a deadline.
///
/// The waiting is `poll` on libpq's socket, run on the connection's serial queue in slices
/// of at most half a second, so `stop()` is noticed promptly.
public final class PostgresListener: Sendable {
    private let connection: PostgresConnection
    private let stopped = Mutex(false)

    /// `applicationName` tells the listeners apart in `pg_stat_activity` (beat's is the default).
    public init(url: String, channel: String, applicationName: String = "seed-scheduler listener", logger: Logger) async throws {
        connection = try await PostgresConnection.connect(url: url, applicationName: applicationName, logger: logger)
        try await connection.execute("LISTEN \"\(channel.replacingOccurrences(of: "\"", with: ""))\"")
    }

    /// Returns true when a notification arrived before `deadline`, false at the deadline
    /// or after `stop()`. Throws when the connection broke.
    public func wait(until deadline: Date) async throws -> Bool {
        try await !notifications(until: deadline).isEmpty
    }

    /// The payloads of the notifications that arrived, as soon as one has; none at the
    /// deadline or after `stop()`. Throws when the connection broke.
    public func notifications(until deadline: Date) async throws -> [String] {
        try await connection.onQueue { [self] in
            while !stopped.withLock({ $0 }) {
                let payloads = try connection.drainNotificationsBlocking()
                if !payloads.isEmpty { return payloads }
                let remaining = deadline.timeIntervalSinceNow
                if remaining <= 0 { return [] }
                try connection.pollReadableBlocking(milliseconds: Int32(min(remaining, 0.5) * 1000) + 1)
            }
            return []
        }
    }

    public func stop() {
        stopped.withLock { $0 = true }
    }
}

extension PostgresConnection {
    /// Reads what the server sent and returns the payloads of the notifications waiting.
    func drainNotificationsBlocking() throws -> [String] {
        try withHandle { handle in
            guard PQconsumeInput(handle) == 1 else {
                throw PostgresError(kind: .connection, message: String(cString: PQerrorMessage(handle)))
            }
            var payloads: [String] = []
            while let notification = PQnotifies(handle) {
                payloads.append(notification.pointee.extra.map { String(cString: $0) } ?? "")
                PQfreemem(notification)
            }
            return payloads
        }
    }

    /// Waits until the socket is readable or the time is up.
    func pollReadableBlocking(milliseconds: Int32) throws {
        try withHandle { handle in
            var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
            guard descriptor.fd >= 0 else { throw PostgresError(kind: .connection, message: "the connection has no socket") }
            _ = Glibc.poll(&descriptor, 1, milliseconds)
        }
    }
}
