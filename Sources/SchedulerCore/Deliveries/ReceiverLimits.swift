/// An admin's limits for one receiver, across every worker: requests in flight at most
/// (`concurrency`), and requests a second (`rate`) with a `burst`. A limit not set leaves
/// the worker's own: the adaptive limit (under RECEIVER_CONCURRENCY), no rate.
public struct ReceiverLimits: Sendable, Equatable {
    public var concurrency: Int?
    public var rate: Double?
    public var burst: Int?

    public static let concurrencyRange = 1...10_000
    public static let maximumRate = 100_000.0
    public static let burstRange = 1...100_000

    public init(concurrency: Int? = nil, rate: Double? = nil, burst: Int? = nil) {
        self.concurrency = concurrency
        self.rate = rate
        self.burst = burst
    }

    public var isEmpty: Bool { concurrency == nil && rate == nil }

    /// Checks an admin's values; a burst needs a rate, and is one second's worth when not given.
    public static func validated(concurrency: Int?, rate: Double?, burst: Int?) throws(FieldErrorMessage) -> ReceiverLimits {
        if let concurrency, !concurrencyRange.contains(concurrency) {
            throw FieldErrorMessage("concurrency must be between 1 and \(concurrencyRange.upperBound)")
        }
        if let rate, !(rate.isFinite && rate > 0 && rate <= maximumRate) {
            throw FieldErrorMessage("rate must be more than 0 and at most \(Int(maximumRate)) requests a second")
        }
        if let burst {
            guard rate != nil else { throw FieldErrorMessage("a burst needs a rate") }
            guard burstRange.contains(burst) else { throw FieldErrorMessage("burst must be between 1 and \(burstRange.upperBound)") }
        }
        return ReceiverLimits(concurrency: concurrency, rate: rate, burst: burst ?? rate.map { max(1, Int($0.rounded(.up))) })
    }

    /// One worker's share, worker `rank` (from 0) of `workers` alive: the concurrency split
    /// as evenly as whole requests go (at least one each, so a concurrency below the number
    /// of workers lets each worker send one), the rate and burst split evenly (a burst of at
    /// least one).
    public func share(workers: Int, rank: Int) -> ReceiverLimits {
        let workers = max(1, workers)
        let rank = min(max(0, rank), workers - 1)
        return ReceiverLimits(
            concurrency: concurrency.map { max(1, $0 / workers + (rank < $0 % workers ? 1 : 0)) },
            rate: rate.map { $0 / Double(workers) },
            burst: burst.map { max(1, ($0 + workers - 1) / workers) })
    }

    /// As an operator reads it: `concurrency 400, 20/s burst 40`.
    public var description: String {
        var parts: [String] = []
        if let concurrency { parts.append("concurrency \(concurrency)") }
        if let rate {
            let number = rate == rate.rounded() && rate < 1e15 ? String(Int(rate)) : String(rate)
            parts.append("\(number)/s burst \(burst ?? 1)")
        }
        return parts.isEmpty ? "adaptive" : parts.joined(separator: ", ")
    }
}
