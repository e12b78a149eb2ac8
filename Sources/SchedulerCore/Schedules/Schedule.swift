import Foundation

/// What a client writes of a schedule.
public struct ScheduleFields: Sendable, Equatable {
    public var frequency: Int?
    public var cronDefinition: String?
    public var intervalDefinition: String?
    public var timezone: String
    public var endpoint: String
    public var payload: JSONValue
    public var authToken: String?
    public var nextSendAt: Date?
    public var enabled: Bool
    /// Why its owner paused it: kept while it is disabled, cleared when it is enabled again.
    public var pausedNote: String?
    /// Nothing runs before `window.start` or after `window.end`.
    public var window: ScheduleWindow
    /// After beat was down, an occurrence due longer ago than this many seconds is recorded
    /// as missed instead of sent; nil: the one occurrence found due is sent, however late.
    public var catchupWindow: Int?
    /// Seconds: each occurrence is sent at an offset in `[due, due + jitter]` (`ScheduleJitter`).
    public var jitter: Int
    /// What a crontab does with a local time the clock skips or shows twice.
    public var daylightSaving: DaylightSaving
    /// What an occurrence due while the previous one is still being delivered does.
    public var overlap: OverlapPolicy

    public init(
        frequency: Int? = nil, cronDefinition: String? = nil, intervalDefinition: String? = nil,
        timezone: String = "UTC", endpoint: String, payload: JSONValue = .null, authToken: String? = nil,
        nextSendAt: Date? = nil, enabled: Bool = true, pausedNote: String? = nil, window: ScheduleWindow = ScheduleWindow(),
        catchupWindow: Int? = nil, jitter: Int = 0, daylightSaving: DaylightSaving = .standard, overlap: OverlapPolicy = .allow
    ) {
        self.frequency = frequency
        self.cronDefinition = cronDefinition
        self.intervalDefinition = intervalDefinition
        self.timezone = timezone
        self.endpoint = endpoint
        self.payload = payload
        self.authToken = authToken
        self.nextSendAt = nextSendAt
        self.enabled = enabled
        self.pausedNote = pausedNote
        self.window = window
        self.catchupWindow = catchupWindow
        self.jitter = jitter
        self.daylightSaving = daylightSaving
        self.overlap = overlap
    }

    public var timing: ScheduleTiming {
        ScheduleTiming(
            cronDefinition: cronDefinition, intervalDefinition: intervalDefinition, timezone: timezone, daylightSaving: daylightSaving)
    }
}

/// A stored schedule.
public struct Schedule: Sendable, Equatable {
    public var id: UUID
    public var fields: ScheduleFields
    public var triggered: Int
    public var createdAt: Date
    public var createdBy: Int64?
    public var updatedAt: Date
    public var updatedBy: Int64?
    /// Why beat disabled this schedule (its next run could not be computed), until a
    /// client enables it again or changes its definition.
    public var disabledReason: String?
    /// Who disabled it (nil: the service, or nobody) and when; cleared when it is enabled.
    public var pausedBy: Int64?
    public var pausedAt: Date?

    public init(
        id: UUID, fields: ScheduleFields, triggered: Int, createdAt: Date, createdBy: Int64?, updatedAt: Date,
        updatedBy: Int64?, disabledReason: String? = nil, pausedBy: Int64? = nil, pausedAt: Date? = nil
    ) {
        self.id = id
        self.fields = fields
        self.triggered = triggered
        self.createdAt = createdAt
        self.createdBy = createdBy
        self.updatedAt = updatedAt
        self.updatedBy = updatedBy
        self.disabledReason = disabledReason
        self.pausedBy = pausedBy
        self.pausedAt = pausedAt
    }
}
