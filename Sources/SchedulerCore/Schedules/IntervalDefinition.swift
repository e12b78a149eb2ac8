/// An interval schedule, `"<integer> <period>"`: `"5 minutes"`, `"1 day"`.
public struct IntervalDefinition: Sendable, Hashable {
    public enum Period: String, Sendable, CaseIterable {
        case days, hours, minutes, seconds, microseconds

        var microsecondsPerUnit: Int64 {
            switch self {
            case .days: 86_400_000_000
            case .hours: 3_600_000_000
            case .minutes: 60_000_000
            case .seconds: 1_000_000
            case .microseconds: 1
            }
        }
    }

    public let every: Int64
    public let period: Period
    /// The length of one interval.
    public let microseconds: Int64

    public static let errorSuffix =
        "is not a valid interval string: integer and period (from: days, hours, minutes, seconds, microseconds) e.g. 1 minutes"

    /// Returns nil for anything but a positive integer and a known period (singular or
    /// plural, any case) of at most about 290,000 years in all.
    public init?(parsing text: String) {
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard parts.count == 2, parts[0].allSatisfy({ $0.isASCII && $0.isNumber }),
            let every = Int64(parts[0]), every > 0
        else { return nil }
        var name = parts[1].lowercased()
        if !name.hasSuffix("s") { name += "s" }
        guard let period = Period(rawValue: name) else { return nil }
        let (total, overflow) = every.multipliedReportingOverflow(by: period.microsecondsPerUnit)
        guard !overflow else { return nil }
        self.every = every
        self.period = period
        self.microseconds = total
    }
}
