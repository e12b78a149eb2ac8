import Foundation
import Logging
import Postgres
import SchedulerStore
import ServiceLifecycle

/// Keeps the delivery history bounded: adds the coming weeks' partitions of `deliveries`
/// and drops those past `DELIVERY_RETENTION_DAYS`, when beat starts and then every
/// `interval` seconds (a minute after a failure, such as a lock not granted in time).
/// Several beats may run it: the database serialises them. With `receivers`, it also
/// deletes the receivers unseen for `receiverRetentionDays`; with `owners`, it folds the
/// changes to users' counts of schedules appended since the last time (`QuotaStore.foldAll`).
public struct HistoryKeeper: Service {
    let history: DeliveryHistory
    let receivers: ReceiverStore?
    let receiverRetentionDays: Int
    let owners: PostgresPool?
    let interval: Double
    let logger: Logger

    public init(
        history: DeliveryHistory, receivers: ReceiverStore? = nil, receiverRetentionDays: Int = 7, owners: PostgresPool? = nil,
        interval: Double = 3600, logger: Logger
    ) {
        self.history = history
        self.receivers = receivers
        self.owners = owners
        self.receiverRetentionDays = receiverRetentionDays
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                var wait = interval
                do {
                    let done = try await history.maintain()
                    if done.added > 0 || done.dropped > 0 {
                        logger.info(
                            "delivery history maintained",
                            metadata: ["partitions.added": "\(done.added)", "partitions.dropped": "\(done.dropped)"])
                    }
                    if let receivers, case let pruned = try await receivers.prune(unseenForDays: receiverRetentionDays), pruned > 0 {
                        logger.info("receivers unseen for a while deleted", metadata: ["receivers.deleted": "\(pruned)"])
                    }
                    if let owners { try await QuotaStore.foldAll(pool: owners) }
                } catch {
                    wait = min(interval, 60)
                    logger.warning(
                        "delivery history maintenance failed; trying again", metadata: ["error": "\(error)", "retry.in.s": "\(wait)"])
                }
                try? await Task.sleep(for: .seconds(wait))
            }
        }
    }
}
