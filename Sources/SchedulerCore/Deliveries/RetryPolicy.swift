import Foundation

/// What to do after an attempt: done, try again after a delay, or give up.
public enum DeliveryDecision: Sendable, Equatable {
    case delivered
    /// Retry through the delay queue at `delayIndex` of the policy's delays.
    case retry(delayIndex: Int, reason: String)
    case dead(reason: String)
}

/// Which failures are worth retrying and how long to wait.
///
/// A connection error, a timeout, 408, 425, 429 and 5xx are retried with growing delays
/// (the receiver's `Retry-After` picks a longer delay when it asks for one); any other
/// answer outside 2xx cannot be fixed by retrying and goes to the dead letters at once, as
/// does the last allowed attempt.
public struct RetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first included.
    public let maxAttempts: Int
    /// The delay queues' TTLs, in milliseconds, shortest first.
    public let delays: [Int]

    public init(maxAttempts: Int, delays: [Int]) {
        self.maxAttempts = maxAttempts
        self.delays = delays
    }

    public static func isRetryable(status: Int) -> Bool {
        status == 408 || status == 425 || status == 429 || (500...599).contains(status)
    }

    /// `attempt` counts from 1.
    public func decide(status: Int?, error: String?, attempt: Int, retryAfter: String?, now: Date = Date()) -> DeliveryDecision {
        if let status, (200...299).contains(status) { return .delivered }
        let reason = status.map { "HTTP \($0)" } ?? (error ?? "no answer")
        let plural = attempt == 1 ? "attempt" : "attempts"
        if let status, !Self.isRetryable(status: status) {
            return .dead(reason: "\(reason) after \(attempt) \(plural) (not retried: the receiver refused the request)")
        }
        guard attempt < maxAttempts, !delays.isEmpty else {
            return .dead(reason: "\(reason) after \(attempt) \(plural)")
        }
        var index = min(attempt - 1, delays.count - 1)
        if let wanted = retryAfter.flatMap({ Self.milliseconds(retryAfter: $0, now: now) }), wanted > delays[index] {
            index = delays.firstIndex(where: { $0 >= wanted }) ?? delays.count - 1
        }
        return .retry(delayIndex: index, reason: reason)
    }

    /// The longest wait a `Retry-After` can ask for, in milliseconds (about 24.8 days):
    /// longer asks are read as this (the longest delay queue is used either way).
    public static let maximumRetryAfter = Int(Int32.max)

    /// `Retry-After` as seconds (`120`) or an HTTP date, in milliseconds from now, clamped
    /// to `0...maximumRetryAfter`; nil for anything else (negative numbers, garbage, a
    /// header longer than any real one). Never traps, whatever the receiver sent.
    public static func milliseconds(retryAfter: String, now: Date) -> Int? {
        guard retryAfter.utf8.count <= 64 else { return nil }
        let text = retryAfter.trimmingCharacters(in: .whitespaces)
        if !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            // Digits only: any number of them, saturating.
            guard let seconds = Int(text), seconds <= maximumRetryAfter / 1000 else { return maximumRetryAfter }
            return seconds * 1000
        }
        guard let date = httpDate(text) else { return nil }
        let milliseconds = (date.timeIntervalSince(now) * 1000).rounded()
        guard milliseconds.isFinite else { return nil }
        return Int(min(max(0, milliseconds), Double(maximumRetryAfter)))
    }

    /// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form RFC 9110 requires.
    static func httpDate(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: text)
    }

    /// Reads `5s,30s,5m,30m` (units ms, s, m, h) into milliseconds.
    public static func parseDelays(_ text: String) -> [Int]? {
        var delays: [Int] = []
        for part in text.split(separator: ",") {
            let item = part.trimmingCharacters(in: .whitespaces).lowercased()
            let units: [(String, Int)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
            guard let (suffix, scale) = units.first(where: { item.hasSuffix($0.0) }),
                let value = Int(item.dropLast(suffix.count)), value > 0, value <= 86_400_000 / scale
            else { return nil }
            delays.append(value * scale)
        }
        return delays.isEmpty ? nil : delays.sorted()
    }

    /// `5s`, `30s`, `5m`, `1500ms`: the name part of a delay queue.
    public static func label(milliseconds: Int) -> String {
        if milliseconds % 3_600_000 == 0 { return "\(milliseconds / 3_600_000)h" }
        if milliseconds % 60_000 == 0 { return "\(milliseconds / 60_000)m" }
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        return "\(milliseconds)ms"
    }
}
