import Foundation

/// What a crontab does with a local time its zone's clock skips or shows twice.
public struct DaylightSaving: Sendable, Equatable {
    /// A time the clock skips (it jumps forward over it).
    public enum Gap: String, Sendable, CaseIterable {
        /// No run that day (Vixie cron's and the original's rule).
        case skip
        /// A run at the first valid time after it: the moment the clock jumps.
        case shift
    }

    /// A time the clock shows twice (it goes back over it).
    public enum Overlap: String, Sendable, CaseIterable {
        /// One run, the first time the clock shows it.
        case first
        /// One run, the second time.
        case second
        /// A run each time.
        case both
    }

    public var gap: Gap
    public var overlap: Overlap

    public init(gap: Gap = .skip, overlap: Overlap = .first) {
        self.gap = gap
        self.overlap = overlap
    }

    /// The original's rules: skip a time the clock skips, run once at the first of two.
    public static let standard = DaylightSaving()

    /// The instants a matched wall time runs at, earliest first, under these choices.
    func instants(atWall wall: Int64, in zone: TimeZone) -> [Int64] {
        let found = zone.instants(atWall: wall)
        switch found.count {
        case 0: return gap == .shift ? zone.gapEnd(atWall: wall).map { [$0] } ?? [] : []
        case 1: return found
        default:
            switch overlap {
            case .first: return [found[0]]
            case .second: return [found[found.count - 1]]
            case .both: return found
            }
        }
    }
}

extension TimeZone {
    /// For a wall time the clock skips, the instant the clock jumps over it (the first valid
    /// time after it); nil when the clock shows that time.
    public func gapEnd(atWall wallSeconds: Int64) -> Int64? {
        let before = Int64(secondsFromGMT(for: Date(timeIntervalSince1970: Double(wallSeconds - 86_400))))
        let after = Int64(secondsFromGMT(for: Date(timeIntervalSince1970: Double(wallSeconds + 86_400))))
        // In a gap the offset grows: at wall - after the old offset holds, at wall - before the new one.
        guard after > before, instants(atWall: wallSeconds).isEmpty else { return nil }
        var low = wallSeconds - after
        var high = wallSeconds - before
        while high - low > 1 {
            let middle = low + (high - low) / 2
            if Int64(secondsFromGMT(for: Date(timeIntervalSince1970: Double(middle)))) == after { high = middle } else { low = middle }
        }
        return high
    }
}
