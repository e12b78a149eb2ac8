import Foundation

/// How long before its due time beat starts on the next instant's occurrences.
///
/// Beat claims and publishes `BEAT_LOOKAHEAD` ahead, so that its part of a delivery is
/// done before the due instant. When more are due at one instant than beat publishes in
/// the lookahead (a burst of 50,000 takes it several seconds), the rest would be claimed
/// after the instant, and the whole burst would wait for beat. So beat counts what is due
/// within a second of the next due time and starts that many occurrences' worth earlier,
/// at `BEAT_PACE` occurrences a second: lookahead + count / pace, at most `maximum`.
/// Only a burst that takes beat `least` or more: a steady load (a thousand due each
/// second, a fifth of a second at the default pace) and a single schedule are claimed the
/// lookahead ahead, as before.
public struct BurstLead: Sendable, Equatable {
    /// The furthest ahead beat starts: as far as `BEAT_LOOKAHEAD` may be set.
    public static let maximum = 10.0
    /// Occurrences due within this many seconds after the next due time count as one burst
    /// (a second, less a millisecond: the next whole second's are the next burst's).
    public static let width = 0.999
    /// Seconds of beat's work that make a burst.
    public static let least = 0.25

    /// A burst's claim: from when, and up to which due time.
    public typealias Start = (from: Date, until: Date)

    /// `BEAT_LOOKAHEAD` in seconds; 0 (nothing held) means nothing is claimed early.
    public let lookahead: Double
    /// `BEAT_PACE`: occurrences a second beat counts on claiming and publishing.
    public let pace: Int

    public init(lookahead: Double, pace: Int) {
        self.lookahead = min(max(0, lookahead), Self.maximum)
        self.pace = max(1, pace)
    }

    /// Counting more than this changes nothing: the lead is at its maximum by then (and
    /// never more than a million, an index range scan of a few tenths of a second).
    public var countLimit: Int {
        guard lookahead > 0 else { return 0 }
        return min(1_000_000, Int(((Self.maximum - lookahead) * Double(pace)).rounded(.up)) + 1)
    }

    /// Seconds ahead of the burst's due time to start claiming it.
    public func seconds(occurrences: Int) -> Double {
        guard lookahead > 0 else { return 0 }
        let work = Double(max(0, occurrences)) / Double(pace)
        guard work >= Self.least else { return lookahead }
        return min(Self.maximum, lookahead + work)
    }

    /// The burst due at `next` (counted `occurrences`): from when beat claims it, and up to
    /// which due time. Nil when that is no earlier than the lookahead would claim it anyway.
    public func start(next: Date, occurrences: Int) -> Start? {
        let lead = seconds(occurrences: occurrences)
        guard lead > lookahead else { return nil }
        return (next.addingTimeInterval(-lead), next.addingTimeInterval(Self.width))
    }
}
