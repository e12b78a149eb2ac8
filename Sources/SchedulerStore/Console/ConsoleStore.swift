import Foundation
import Postgres

/// What the operations console reads beyond the API's own resources: the sampled history of
/// queue depths (migration 0007) and deliveries counted by minute and outcome.
public struct ConsoleStore: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    /// One queue's depth at one time.
    public struct QueueSample: Sendable, Equatable {
        public let takenAt: Date
        public let queue: String
        public let ready: Int
        public let consumers: Int

        public init(takenAt: Date, queue: String, ready: Int, consumers: Int) {
            self.takenAt = takenAt
            self.queue = queue
            self.ready = ready
            self.consumers = consumers
        }
    }

    /// Records one sample of every queue (a slot another web process wrote already is kept),
    /// and drops samples older than `keepSeconds`.
    public func record(_ samples: [QueueSample], keepSeconds: Double = 86_400) async throws {
        guard !samples.isEmpty else { return }
        try await pool.query(
            """
            INSERT INTO queue_samples (taken_at, queue, ready, consumers)
            SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::bigint[], $4::bigint[])
            ON CONFLICT (taken_at, queue) DO NOTHING
            """,
            [
                PostgresArray.literal(samples.map { SQL.text($0.takenAt) }), PostgresArray.literal(samples.map(\.queue)),
                PostgresArray.literal(samples.map { String(max(0, $0.ready)) }),
                PostgresArray.literal(samples.map { String(max(0, $0.consumers)) }),
            ])
        try await pool.query(
            "DELETE FROM queue_samples WHERE taken_at < now() - make_interval(secs => $1)", [String(max(60, keepSeconds))])
    }

    /// The samples of the last `seconds`, oldest first.
    public func samples(seconds: Double) async throws -> [QueueSample] {
        let rows = try await pool.query(
            """
            SELECT taken_at, queue, ready, consumers FROM queue_samples
            WHERE taken_at >= now() - make_interval(secs => $1) ORDER BY taken_at, queue
            """, [String(seconds)])
        return try rows.map {
            QueueSample(
                takenAt: try $0.requiredDate("taken_at"), queue: try $0.requiredString("queue"),
                ready: Int(try $0.requiredInt64("ready")), consumers: Int(try $0.requiredInt64("consumers")))
        }
    }

    /// Deliveries of one minute (of their due time) in one state.
    public struct MinuteCount: Sendable, Equatable {
        public let minute: Date
        public let state: String
        public let count: Int
    }

    /// Deliveries due in the last `seconds`, counted by minute and state (`owner`: only those
    /// of this user's schedules). Reads only the partitions of those minutes: ids start with
    /// their due time.
    public func deliveriesByMinute(seconds: Double, owner: Int64?, now: Date = Date()) async throws -> [MinuteCount] {
        let since = now.addingTimeInterval(-seconds)
        let rows = try await pool.query(
            """
            SELECT date_trunc('minute', d.scheduled_for) AS minute, d.state, count(*) AS n
            FROM deliveries d
            WHERE d.id >= $1::uuid AND d.scheduled_for >= $2::timestamptz
              AND ($3::bigint IS NULL OR (d.kind = 'webhook' AND d.owner_id = $3)
                   OR (d.kind <> 'webhook' AND d.schedule_id IN (SELECT id FROM schedules WHERE created_by = $3)))
            GROUP BY 1, 2 ORDER BY 1, 2
            """, [SQL.text(DeliveryID.floor(since)), SQL.text(since), owner.map { String($0) }])
        return try rows.map {
            MinuteCount(
                minute: try $0.requiredDate("minute"), state: try $0.requiredString("state"), count: Int(try $0.requiredInt64("n")))
        }
    }

    /// One beat's last round.
    public struct BeatRound: Sendable, Equatable {
        public let beat: String
        public let lastRoundAt: Date
        public let roundMilliseconds: Double
        public let lagMilliseconds: Double

        public init(beat: String, lastRoundAt: Date, roundMilliseconds: Double, lagMilliseconds: Double) {
            self.beat = beat
            self.lastRoundAt = lastRoundAt
            self.roundMilliseconds = roundMilliseconds
            self.lagMilliseconds = lagMilliseconds
        }
    }

    /// Records a beat's last round (migration 0009) and drops the rows of beats gone for a day.
    public func recordRound(_ round: BeatRound) async throws {
        try await pool.query(
            """
            INSERT INTO beat_status (beat, last_round_at, round_ms, lag_ms, updated_at) VALUES ($1, $2, $3, $4, now())
            ON CONFLICT (beat) DO UPDATE SET last_round_at = excluded.last_round_at, round_ms = excluded.round_ms,
                lag_ms = excluded.lag_ms, updated_at = now()
            """,
            [
                round.beat, SQL.text(round.lastRoundAt), String(round.roundMilliseconds.isFinite ? round.roundMilliseconds : 0),
                String(round.lagMilliseconds.isFinite ? round.lagMilliseconds : 0),
            ])
        try await pool.query("DELETE FROM beat_status WHERE updated_at < now() - interval '1 day'")
    }

    /// The beats heard from in the last `seconds`, most recent first.
    public func beats(seconds: Double) async throws -> [BeatRound] {
        let rows = try await pool.query(
            """
            SELECT beat, last_round_at, round_ms, lag_ms FROM beat_status
            WHERE updated_at >= now() - make_interval(secs => $1) ORDER BY last_round_at DESC LIMIT 100
            """, [String(seconds)])
        return try rows.map {
            BeatRound(
                beat: try $0.requiredString("beat"), lastRoundAt: try $0.requiredDate("last_round_at"),
                roundMilliseconds: $0["round_ms"].flatMap(Double.init) ?? 0, lagMilliseconds: $0["lag_ms"].flatMap(Double.init) ?? 0)
        }
    }

    /// How late first POSTs left, over deliveries due in the last `seconds`.
    public struct Lateness: Sendable, Equatable {
        public let deliveries: Int
        public let p50Milliseconds: Double?
        public let p99Milliseconds: Double?
    }

    public func lateness(seconds: Double, owner: Int64?, now: Date = Date()) async throws -> Lateness {
        let since = now.addingTimeInterval(-seconds)
        let rows = try await pool.query(
            """
            SELECT count(*) AS n, percentile_cont(0.5) WITHIN GROUP (ORDER BY d.lateness_ms) AS p50,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY d.lateness_ms) AS p99
            FROM deliveries d
            WHERE d.id >= $1::uuid AND d.scheduled_for >= $2::timestamptz AND d.lateness_ms IS NOT NULL
              AND ($3::bigint IS NULL OR (d.kind = 'webhook' AND d.owner_id = $3)
                   OR (d.kind <> 'webhook' AND d.schedule_id IN (SELECT id FROM schedules WHERE created_by = $3)))
            """, [SQL.text(DeliveryID.floor(since)), SQL.text(since), owner.map { String($0) }])
        let row = rows.first
        return Lateness(
            deliveries: row?["n"].flatMap { Int($0) } ?? 0, p50Milliseconds: row?["p50"].flatMap(Double.init),
            p99Milliseconds: row?["p99"].flatMap(Double.init))
    }

    /// Receivers' health from their deliveries due in the last `seconds`: by endpoint host.
    public struct EndpointHealth: Sendable, Equatable {
        public let host: String
        public let deliveries: Int
        public let delivered: Int
        public let dead: Int
        public let latencyP50: Double?
        public let lastError: String?
        public let lastErrorAt: Date?
    }

    public func endpoints(seconds: Double, owner: Int64?, now: Date = Date()) async throws -> [EndpointHealth] {
        let since = now.addingTimeInterval(-seconds)
        let rows = try await pool.query(
            """
            SELECT coalesce(substring(s.endpoint FROM '^[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#]*)'), '(none)') AS host,
                   count(*) AS deliveries,
                   count(*) FILTER (WHERE d.state = 'delivered') AS delivered,
                   count(*) FILTER (WHERE d.state = 'dead') AS dead,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY d.latency_ms) AS p50,
                   (array_agg(d.last_error ORDER BY d.updated_at DESC) FILTER (WHERE d.last_error IS NOT NULL))[1] AS last_error,
                   max(d.updated_at) FILTER (WHERE d.last_error IS NOT NULL) AS last_error_at
            FROM deliveries d JOIN schedules s ON s.id = d.schedule_id
            WHERE d.id >= $1::uuid AND d.scheduled_for >= $2::timestamptz AND d.kind = 'schedule'
              AND ($3::bigint IS NULL OR s.created_by = $3)
            GROUP BY 1 ORDER BY dead DESC, deliveries DESC, host LIMIT 500
            """, [SQL.text(DeliveryID.floor(since)), SQL.text(since), owner.map { String($0) }])
        return try rows.map {
            EndpointHealth(
                host: try $0.requiredString("host"), deliveries: Int(try $0.requiredInt64("deliveries")),
                delivered: Int(try $0.requiredInt64("delivered")), dead: Int(try $0.requiredInt64("dead")),
                latencyP50: $0["p50"].flatMap(Double.init), lastError: $0["last_error"], lastErrorAt: try $0.date("last_error_at"))
        }
    }
}
