import Foundation

/// What a schedule may ask for: the bounds the API enforces on writes and beat enforces
/// on stored rows (a row edited by hand, or written before a bound was tightened).
///
/// Every bound keeps time arithmetic far from the edges of `Int64` microseconds: instants
/// live between 1970 and 9999, and intervals are at most `maximumInterval`, so a next run
/// is always computable without overflow.
public struct ScheduleLimits: Sendable, Equatable {
    /// The shortest interval, in microseconds (`SCHEDULE_MIN_INTERVAL`).
    public var minimumInterval: Int64
    /// The longest interval, in microseconds (`SCHEDULE_MAX_INTERVAL`).
    public var maximumInterval: Int64
    /// How far ahead of now a client may set `next_send_at`, in microseconds
    /// (`SCHEDULE_MAX_HORIZON`); nil: up to `latestInstant`, as the original accepted any
    /// date (a client choosing the year 2099 for a far next run keeps working).
    public var horizon: Int64?
    /// The largest payload, serialized as JSON, in bytes (`MAX_PAYLOAD_BYTES`).
    public var maximumPayloadBytes: Int
    /// Where endpoints may point (`EGRESS_ALLOW` opens what it names).
    public var egress = EgressPolicy()
    /// True when `minimumInterval` is the user's quota (`QUOTA_MIN_INTERVAL`), not `SCHEDULE_MIN_INTERVAL`.
    public var minimumIntervalIsQuota = false

    public init(minimumInterval: Int64, maximumInterval: Int64, horizon: Int64?, maximumPayloadBytes: Int) {
        self.minimumInterval = minimumInterval
        self.maximumInterval = maximumInterval
        self.horizon = horizon
        self.maximumPayloadBytes = maximumPayloadBytes
    }

    public static let microsecondsPerDay: Int64 = 86_400_000_000

    /// One second, ten years, no horizon short of the year 9999, 256 KiB.
    public static let standard = ScheduleLimits(
        minimumInterval: 1_000_000, maximumInterval: 3650 * microsecondsPerDay, horizon: nil, maximumPayloadBytes: 262_144)

    /// The latest `next_send_at` a client may set at `now` (microseconds): now plus the
    /// horizon, never past `latestInstant`.
    public func latestNextSendAt(now: Int64) -> Int64 {
        guard let horizon else { return Self.latestInstant }
        let (latest, overflow) = now.addingReportingOverflow(horizon)
        return overflow ? Self.latestInstant : min(latest, Self.latestInstant)
    }

    /// The earliest instant stored: 1970-01-01T00:00:00Z.
    public static let earliestInstant: Int64 = 0
    /// The latest instant stored: 9999-12-31T23:59:59.999999Z.
    public static let latestInstant: Int64 = 253_402_300_799_999_999

    public static func contains(instant microseconds: Int64) -> Bool {
        (earliestInstant...latestInstant).contains(microseconds)
    }

    /// `1s`, `90s`, `10m`, `3650d`: the way settings and messages spell a length.
    public static func describe(microseconds: Int64) -> String {
        let units: [(Int64, String)] = [(microsecondsPerDay, "d"), (3_600_000_000, "h"), (60_000_000, "m"), (1_000_000, "s"), (1000, "ms")]
        for (size, unit) in units where microseconds >= size && microseconds % size == 0 {
            return "\(microseconds / size)\(unit)"
        }
        return "\(microseconds)us"
    }

    /// Reads `500ms`, `1s`, `5m`, `2h`, `3650d` into microseconds; nil for anything else,
    /// including a length past `maximum` microseconds.
    public static func parseDuration(_ text: String, maximum: Int64 = 100 * 366 * microsecondsPerDay) -> Int64? {
        let item = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Int64)] = [("ms", 1000), ("s", 1_000_000), ("m", 60_000_000), ("h", 3_600_000_000), ("d", microsecondsPerDay)]
        guard let (suffix, scale) = units.first(where: { item.hasSuffix($0.0) }) else { return nil }
        let digits = item.dropLast(suffix.count)
        guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int64(digits) else {
            return nil
        }
        let (total, overflow) = value.multipliedReportingOverflow(by: scale)
        guard !overflow, total > 0, total <= maximum else { return nil }
        return total
    }
}
