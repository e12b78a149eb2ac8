import Foundation

/// Which queue beat publishes a job to. A job due later than now goes to `scheduler.held`,
/// where workers take it with a window of its own and hold it until its due time; a job
/// due now (or overdue) goes to `scheduler.deliveries`, never behind held jobs.
///
/// The held queue is first in, first out, and workers take from it only as their held jobs
/// fall due: a job due before jobs already published there would wait behind them (a
/// one-off created a second before its time, inside the lookahead, behind a burst claimed
/// earlier for a later instant). So only a job due no earlier than every job this router
/// sent there goes to it; an earlier one goes to the main queue, where a worker holds it
/// just the same (it arrives early and is held in the main window).
public struct HeldRouting: Sendable {
    /// The latest due time of a job sent to the held queue.
    public private(set) var latest = Date.distantPast

    public init() {}

    /// Whether the job due at `scheduledFor`, published at `now`, goes to the held queue.
    public mutating func held(_ scheduledFor: Date, now: Date) -> Bool {
        guard scheduledFor > now, scheduledFor >= latest else { return false }
        latest = scheduledFor
        return true
    }
}
