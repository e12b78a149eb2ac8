import SchedulerCore
import SchedulerStore

/// What the handlers need to know of the configuration.
struct APISettings: Sendable {
    let pageSize: Int
    let maxPageSize: Int
    let useSSL: Bool
    let hookAuthToken: String?
    let scheduleLimits: ScheduleLimits
    let hosts: HostPolicy
    let quotas: QuotaDefaults
    /// Days of delivery records kept (0: all): a backfill reaches no further back.
    let deliveryRetentionDays: Int
    /// The occurrences one backfill may queue.
    let backfillLimit: Int

    init(_ configuration: Configuration) {
        hookAuthToken = configuration.hookAuthToken
        pageSize = configuration.pageSize
        maxPageSize = configuration.maxPageSize
        useSSL = configuration.useSSL
        scheduleLimits = configuration.scheduleLimits
        hosts = configuration.hostPolicy
        quotas = QuotaDefaults(configuration)
        deliveryRetentionDays = configuration.deliveryRetentionDays
        backfillLimit = configuration.backfillLimit
    }
}

extension ScheduleLimits {
    /// These limits for a user with `quota`: intervals no shorter than its minimum either.
    func within(_ quota: Quota) -> ScheduleLimits {
        var limits = self
        if quota.minimumInterval > limits.minimumInterval {
            limits.minimumInterval = quota.minimumInterval
            limits.minimumIntervalIsQuota = true
        }
        return limits
    }
}
