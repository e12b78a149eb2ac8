import Foundation
import Postgres
import SchedulerCore

/// Receivers as the workers report them, and operators' commands for them.
public struct ReceiverStore: Sendable {
    /// One receiver's row.
    public struct Report: Sendable, Equatable {
        public var receiver: String
        public var state: String
        public var concurrency: Double
        public var inFlight: Int
        public var waiting: Int
        public var successRate: Double?
        public var latencyMilliseconds: Double?
        public var pausedUntil: Date?
        public var heldOpen: Bool
        public var changedAt: Date?
        public var updatedAt: Date?

        public init(
            receiver: String, state: String, concurrency: Double, inFlight: Int, waiting: Int, successRate: Double?,
            latencyMilliseconds: Double?, pausedUntil: Date?, heldOpen: Bool, changedAt: Date?, updatedAt: Date? = nil
        ) {
            self.receiver = receiver
            self.state = state
            self.concurrency = concurrency
            self.inFlight = inFlight
            self.waiting = waiting
            self.successRate = successRate
            self.latencyMilliseconds = latencyMilliseconds
            self.pausedUntil = pausedUntil
            self.heldOpen = heldOpen
            self.changedAt = changedAt
            self.updatedAt = updatedAt
        }
    }

    /// An operator's command, as workers read it.
    public struct Command: Sendable, Equatable {
        public let receiver: String
        public let command: String
        public let at: Date
    }

    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    /// Writes the reports (one statement; the last writer wins).
    public func write(_ reports: [Report]) async throws {
        guard !reports.isEmpty else { return }
        func number(_ value: Double?) -> JSONValue {
            guard let value, value.isFinite else { return .null }
            return .number(String(value))
        }
        let rows = JSONValue.array(
            reports.map { report in
                .object([
                    "receiver": .string(report.receiver), "state": .string(report.state),
                    "concurrency": number(report.concurrency), "in_flight": .number(String(report.inFlight)),
                    "waiting": .number(String(report.waiting)), "success_rate": number(report.successRate),
                    "latency_ms": number(report.latencyMilliseconds),
                    "paused_until": report.pausedUntil.map { .string(Timestamp.format($0)) } ?? .null,
                    "changed_at": report.changedAt.map { .string(Timestamp.format($0)) } ?? .null,
                ])
            })
        try await pool.query(
            """
            INSERT INTO receivers (receiver, state, concurrency, in_flight, waiting, success_rate, latency_ms, paused_until, changed_at, updated_at)
            SELECT receiver, state, concurrency, in_flight, waiting, success_rate, latency_ms, paused_until, changed_at, now()
            FROM json_to_recordset($1::json) AS r(receiver text, state text, concurrency double precision, in_flight integer,
                waiting integer, success_rate double precision, latency_ms double precision, paused_until timestamptz, changed_at timestamptz)
            ON CONFLICT (receiver) DO UPDATE SET
                state = excluded.state, concurrency = excluded.concurrency, in_flight = excluded.in_flight,
                waiting = excluded.waiting, success_rate = excluded.success_rate, latency_ms = excluded.latency_ms,
                paused_until = excluded.paused_until,
                changed_at = coalesce(excluded.changed_at, receivers.changed_at), updated_at = now()
            """, [rows.serialized])
    }

    /// Every receiver, open ones first.
    /// Deletes the receivers no worker has written for `days` days (an operator's hold open
    /// is kept); returns how many went. Without it, the table grows by every host a tenant
    /// ever pointed a schedule at.
    @discardableResult
    public func prune(unseenForDays days: Int) async throws -> Int {
        try await pool.query(
            "DELETE FROM receivers WHERE updated_at < now() - make_interval(days => $1::int) AND NOT held_open", [String(days)]
        ).affectedRows
    }

    public func all() async throws -> [Report] {
        try await pool.query(
            """
            SELECT receiver, state, concurrency, in_flight, waiting, success_rate, latency_ms, paused_until, held_open,
                changed_at, updated_at
            FROM receivers ORDER BY state = 'closed', receiver
            """
        ).map { row in
            Report(
                receiver: try row.requiredString("receiver"), state: try row.requiredString("state"),
                concurrency: Double(row["concurrency"] ?? "") ?? 0, inFlight: Int(row["in_flight"] ?? "") ?? 0,
                waiting: Int(row["waiting"] ?? "") ?? 0, successRate: row["success_rate"].flatMap(Double.init),
                latencyMilliseconds: row["latency_ms"].flatMap(Double.init), pausedUntil: try row.date("paused_until"),
                heldOpen: try row.bool("held_open"), changedAt: try row.date("changed_at"), updatedAt: try row.date("updated_at"))
        }
    }

    /// Records an operator's command (`open`, `close` or `reset`); every worker applies it
    /// at its next sync. A receiver no worker has seen yet may be opened ahead.
    public func command(_ command: String, receiver: String) async throws {
        try await pool.query(
            """
            INSERT INTO receivers (receiver, state, held_open, command, command_at)
            VALUES ($1, CASE WHEN $2 = 'open' THEN 'open' ELSE 'closed' END, $2 = 'open', $2, clock_timestamp())
            ON CONFLICT (receiver) DO UPDATE SET command = $2, command_at = clock_timestamp(), held_open = ($2 = 'open')
            """, [receiver, command])
    }

    /// Commands given after `since`.
    public func commands(since: Date) async throws -> [Command] {
        try await pool.query(
            "SELECT receiver, command, command_at FROM receivers WHERE command IS NOT NULL AND command_at > $1 ORDER BY command_at",
            [Timestamp.format(since)]
        ).map { row in
            Command(
                receiver: try row.requiredString("receiver"), command: try row.requiredString("command"),
                at: try row.date("command_at") ?? since)
        }
    }
}
