/// What one tenant (a user) may hold and do: `QUOTA_*` settings for normal users,
/// `ADMIN_QUOTA_*` for admins, each overridden per user by `scheduler-ctl quota set`.
public struct Quota: Sendable, Equatable {
    /// Schedules the user created, at most.
    public var schedules: Int
    /// Webhooks the user registered, at most.
    public var hooks: Int
    /// Schedules the user may create in a minute (a fixed window per user).
    public var createsPerMinute: Int
    /// The sum of the delivery rates of the user's enabled recurring schedules, per second, at
    /// most (an interval of n seconds counts 1/n; a crontab at most once a minute, 1/60).
    public var deliveriesPerSecond: Double
    /// The shortest `interval_definition` the user may ask for, in microseconds (never
    /// shorter than `SCHEDULE_MIN_INTERVAL`).
    public var minimumInterval: Int64

    public init(schedules: Int, hooks: Int, createsPerMinute: Int, deliveriesPerSecond: Double, minimumInterval: Int64) {
        self.schedules = schedules
        self.hooks = hooks
        self.createsPerMinute = createsPerMinute
        self.deliveriesPerSecond = deliveriesPerSecond
        self.minimumInterval = minimumInterval
    }

    /// A normal user's: 10,000 schedules, 20 hooks, 600 creates a minute, 100 deliveries a
    /// second, intervals of 10 s or more.
    public static let user = Quota(
        schedules: 10_000, hooks: 20, createsPerMinute: 600, deliveriesPerSecond: 100, minimumInterval: 10_000_000)
    /// An admin's: 1,000,000 schedules, 200 hooks, 60,000 creates a minute, 100,000 deliveries
    /// a second, intervals down to `SCHEDULE_MIN_INTERVAL`.
    public static let admin = Quota(
        schedules: 1_000_000, hooks: 200, createsPerMinute: 60_000, deliveriesPerSecond: 100_000, minimumInterval: 0)

    /// The quota with `override`'s values where it has them.
    public func overridden(by override: QuotaOverride) -> Quota {
        Quota(
            schedules: override.schedules ?? schedules, hooks: override.hooks ?? hooks,
            createsPerMinute: override.createsPerMinute ?? createsPerMinute,
            deliveriesPerSecond: override.deliveriesPerSecond ?? deliveriesPerSecond,
            minimumInterval: override.minimumInterval ?? minimumInterval)
    }

    /// The names quotas go by in answers, settings and metrics.
    public enum Name: String, Sendable, CaseIterable {
        case schedules, hooks
        case createsPerMinute = "creates_per_minute"
        case deliveriesPerSecond = "deliveries_per_second"
        case minimumInterval = "min_interval"
    }
}

/// One user's own values (nil: the default of their kind).
public struct QuotaOverride: Sendable, Equatable {
    public var schedules: Int?
    public var hooks: Int?
    public var createsPerMinute: Int?
    public var deliveriesPerSecond: Double?
    public var minimumInterval: Int64?

    public init(
        schedules: Int? = nil, hooks: Int? = nil, createsPerMinute: Int? = nil, deliveriesPerSecond: Double? = nil,
        minimumInterval: Int64? = nil
    ) {
        self.schedules = schedules
        self.hooks = hooks
        self.createsPerMinute = createsPerMinute
        self.deliveriesPerSecond = deliveriesPerSecond
        self.minimumInterval = minimumInterval
    }

    public var isEmpty: Bool { self == QuotaOverride() }
}

extension ScheduleTiming {
    /// Deliveries a second this timing makes at most when enabled: 1/interval for an
    /// interval, 1/60 for a crontab (it fires at most once a minute), none for a one-off.
    public var deliveryRate: Double {
        switch self {
        case .interval(let interval): 1_000_000 / Double(max(interval.microseconds, 1))
        case .cron: 1.0 / 60
        case .none: 0
        }
    }
}
