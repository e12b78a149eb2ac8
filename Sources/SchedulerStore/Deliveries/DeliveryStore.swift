import Foundation
import Postgres
import SchedulerCore

/// Delivery records: the outbox beat publishes from (`DeliveryStore+Beat`), the state
/// workers read and record (`+Worker`), and what the API and operators read (`+History`,
/// `+DeadLetters`).
public struct DeliveryStore: Sendable {
    let pool: PostgresPool
    /// Seconds a claimed but unpublished job waits before a beat publishes it again (it
    /// must be longer than publishing a batch takes).
    let publishLease: Int

    /// The bounds beat checks a stored schedule against before it fires it.
    let limits: ScheduleLimits

    /// HOOK_AUTH_TOKEN: sent to admins' hooks when they are told of a dead letter or a pause.
    let hookAuthToken: String?

    public init(pool: PostgresPool, publishLease: Int = 60, limits: ScheduleLimits = .standard, hookAuthToken: String? = nil) {
        self.pool = pool
        self.publishLease = publishLease
        self.limits = limits
        self.hookAuthToken = hookAuthToken
    }

    /// Deliveries published and not finished: in a queue, or in a worker's hands. A beat marks
    /// what it published a few seconds late (see `markPublished`): until then a job whose
    /// lease is running counts as published.
    public func inProgressCount() async throws -> Int {
        let row = try await pool.query(
            """
            SELECT count(*) FROM deliveries
            WHERE (published_at IS NOT NULL OR publish_after > now()) AND state IN ('queued', 'retrying') AND finished_at IS NULL
            """
        ).first
        return row?[0].flatMap { Int($0) } ?? 0
    }

    static let columns = """
        id, schedule_id, kind, scheduled_for, state, attempts, last_status, last_error, latency_ms,
        created_at, published_at, finished_at, origin
        """
}
