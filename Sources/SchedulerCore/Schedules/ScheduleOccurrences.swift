import Foundation

/// A schedule's occurrences in a range of time, for a backfill.
public enum ScheduleOccurrences {
    /// The occurrences of `timing` from `from` to `to` (both inclusive) inside `window`, at
    /// most `limit`; nil when there are more. An interval's occurrences keep the cadence of
    /// `anchor` (one of its runs: the stored next run); a one-off has none.
    public static func between(
        _ timing: ScheduleTiming, anchor: Date, from: Date, to: Date, window: ScheduleWindow = ScheduleWindow(), limit: Int
    ) -> [Date]? {
        let lower = max(from, window.start ?? from)
        let upper = min(to, window.end ?? to)
        guard lower <= upper else { return [] }
        var found: [Date] = []
        switch timing {
        case .none:
            return []
        case .cron:
            var next = timing.nextRun(after: lower.addingTimeInterval(-1e-6))
            while let at = next, at <= upper {
                guard found.count < limit else { return nil }
                found.append(at)
                next = timing.nextRun(after: at)
            }
        case .interval(let interval):
            let length = interval.microseconds
            guard length > 0 else { return [] }
            let start = Timestamp.microseconds(anchor)
            let (low, high) = (Timestamp.microseconds(lower), Timestamp.microseconds(upper))
            // The first whole number of intervals from the anchor at or after `lower`.
            let (offset, overflow) = low.subtractingReportingOverflow(start)
            guard !overflow else { return [] }
            var steps = offset / length
            if steps * length < offset { steps += 1 }
            var (at, atOverflow) = start.addingReportingOverflow(steps * length)
            while !atOverflow, at <= high {
                guard found.count < limit else { return nil }
                found.append(Timestamp.date(microseconds: at))
                (at, atOverflow) = at.addingReportingOverflow(length)
            }
        }
        return found
    }
}
