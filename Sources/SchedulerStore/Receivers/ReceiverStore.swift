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
        /// An admin's limits across every worker (`setLimits`); read, not written, by `write`.
        public var limits = ReceiverLimits()

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
    /// HOOK_AUTH_TOKEN: sent to admins' hooks when they are told of a circuit's change.
    let hookAuthToken: String?

    public init(pool: PostgresPool, hookAuthToken: String? = nil) {
        self.pool = pool
        self.hookAuthToken = hookAuthToken
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

    /// Deletes the receivers no worker has written for `days` days (an operator's hold open
    /// is kept); returns how many went. Without it, the table grows by every host a tenant
    /// ever pointed a schedule at.
    @discardableResult
    public func prune(unseenForDays days: Int) async throws -> Int {
        try await pool.query(
            """
            DELETE FROM receivers WHERE updated_at < now() - make_interval(days => $1::int) AND NOT held_open
                AND limit_concurrency IS NULL AND limit_rate IS NULL
            """, [String(days)]
        ).affectedRows
    }

    /// Every receiver, open ones first (at most `limit`).
    public func all(limit: Int = 100_000) async throws -> [Report] {
        try await pool.query(
            """
            SELECT receiver, state, concurrency, in_flight, waiting, success_rate, latency_ms, paused_until, held_open,
                changed_at, updated_at, limit_concurrency, limit_rate, limit_burst
            FROM receivers ORDER BY state = 'closed', receiver LIMIT $1
            """, [String(limit)]
        ).map { row in
            var report = Report(
                receiver: try row.requiredString("receiver"), state: try row.requiredString("state"),
                concurrency: Double(row["concurrency"] ?? "") ?? 0, inFlight: Int(row["in_flight"] ?? "") ?? 0,
                waiting: Int(row["waiting"] ?? "") ?? 0, successRate: row["success_rate"].flatMap(Double.init),
                latencyMilliseconds: row["latency_ms"].flatMap(Double.init), pausedUntil: try row.date("paused_until"),
                heldOpen: try row.bool("held_open"), changedAt: try row.date("changed_at"), updatedAt: try row.date("updated_at"))
            report.limits = Self.limits(row)
            return report
        }
    }

    static func limits(_ row: PostgresRow) -> ReceiverLimits {
        ReceiverLimits(
            concurrency: row["limit_concurrency"].flatMap { Int($0) }, rate: row["limit_rate"].flatMap { Double($0) },
            burst: row["limit_burst"].flatMap { Int($0) })
    }

    /// Sets a receiver's limits across every worker (`ReceiverLimits.validated`; empty: the
    /// worker's own again); kept over restarts, read by every worker at its next sync. A
    /// receiver no worker has seen yet may be given limits ahead.
    public func setLimits(_ limits: ReceiverLimits, receiver: String) async throws {
        try await pool.query(
            """
            INSERT INTO receivers (receiver, limit_concurrency, limit_rate, limit_burst, limits_at)
            VALUES ($1, $2, $3, $4, clock_timestamp())
            ON CONFLICT (receiver) DO UPDATE SET limit_concurrency = $2, limit_rate = $3, limit_burst = $4,
                limits_at = clock_timestamp()
            """,
            [
                receiver, limits.concurrency.map { String($0) }, limits.rate.map { String($0) },
                limits.rate == nil ? nil : limits.burst.map { String($0) },
            ])
    }

    /// Notes that worker `id` is alive and returns, in one statement (the workers run it every
    /// few seconds): how many workers are alive (seen in the last `window` seconds, this one
    /// included), this one's rank among them (their ids in order), and the receivers' limits
    /// set by hand (at most `limit` receivers): what `ReceiverLimits.share` takes. Rows of
    /// workers gone for an hour are deleted.
    public func workers(alive id: String, window: Double = 10, limit: Int = 100_000) async throws -> (
        count: Int, rank: Int, limits: [String: ReceiverLimits]
    ) {
        let row = try await pool.query(
            PreparedStatement(
                """
                WITH seen AS (
                    INSERT INTO workers (id, seen_at) VALUES ($1, now()) ON CONFLICT (id) DO UPDATE SET seen_at = now()),
                gone AS (DELETE FROM workers WHERE seen_at < now() - interval '1 hour' AND id <> $1)
                SELECT
                    (SELECT count(*) FROM workers WHERE seen_at > now() - make_interval(secs => $2) AND id <> $1) + 1 AS count,
                    (SELECT count(*) FROM workers WHERE seen_at > now() - make_interval(secs => $2) AND id < $1) AS rank,
                    (SELECT json_agg(json_build_array(receiver, limit_concurrency, limit_rate, limit_burst))::text FROM (
                        SELECT receiver, limit_concurrency, limit_rate, limit_burst FROM receivers
                        WHERE limit_concurrency IS NOT NULL OR limit_rate IS NOT NULL ORDER BY receiver LIMIT $3) AS l) AS limits
                """), [id, String(window), String(limit)]
        ).first
        var limits: [String: ReceiverLimits] = [:]
        if let text = row?["limits"], case .array(let entries) = try JSONParser.parse(text) {
            for case .array(let fields) in entries where fields.count == 4 {
                guard let receiver = fields[0].stringValue else { continue }
                let rate: Double? = if case .number(let literal) = fields[2] { Double(literal) } else { nil }
                limits[receiver] = ReceiverLimits(concurrency: fields[1].integerValue, rate: rate, burst: fields[3].integerValue)
            }
        }
        return (max(1, row?["count"].flatMap { Int($0) } ?? 1), row?["rank"].flatMap { Int($0) } ?? 0, limits)
    }

    /// Deletes worker `id`'s row (it stopped): the others' shares grow at their next sync.
    public func workerStopped(_ id: String) async throws {
        try await pool.query("DELETE FROM workers WHERE id = $1", [id])
    }

    /// Tells the admins' `receiver.opened` or `receiver.closed` hooks of a circuit's change,
    /// unless another worker told of the same change already (each worker has a circuit of
    /// its own); returns whether this call told.
    @discardableResult
    public func announce(receiver: String, opened: Bool, data: JSONValue) async throws -> Bool {
        let hookToken = hookAuthToken
        return try await pool.withTransaction { connection in
            let changed = try await connection.query(
                """
                INSERT INTO receivers (receiver, announced) VALUES ($1, $2)
                ON CONFLICT (receiver) DO UPDATE SET announced = excluded.announced
                WHERE receivers.announced IS DISTINCT FROM excluded.announced
                RETURNING receiver
                """, [receiver, opened ? "opened" : "closed"])
            guard changed.first != nil else { return false }
            try await HookCalls.queue(
                opened ? .receiverOpened : .receiverClosed, [.init(owner: nil, scheduleID: nil, data: data)], hookToken: hookToken,
                connection: connection)
            return true
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
