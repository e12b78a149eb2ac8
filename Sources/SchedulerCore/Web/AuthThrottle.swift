import Synchronization

/// Failed authentications per client address: past `limit` in a minute, the address's
/// requests with credentials are refused (429) without a look-up until the minute is over.
/// A bogus token costs a query from web's small pool; this bounds what one address can
/// spend. IPv6 addresses count by their /64 (one host has a whole /64 to pick from).
/// At most `capacity` addresses are tracked: past it, expired ones are swept (at most
/// once a second) and an address that still does not fit is not tracked (fails open).
public final class AuthThrottle: Sendable {
    public let limit: Int
    public let window: Double
    public let capacity: Int

    struct Entry {
        var windowStart: Double
        var failures: Int
    }

    struct State {
        var entries: [String: Entry] = [:]
        var lastSweep = -Double.infinity
    }

    private let state = Mutex(State())

    public init(limit: Int, window: Double = 60, capacity: Int = 10_000) {
        self.limit = limit
        self.window = window
        self.capacity = capacity
    }

    /// The key an address counts under.
    public static func key(_ address: String) -> String {
        guard address.contains(":"), let parsed = IPAddress(address), parsed.bytes.count == 16 else { return address }
        if let v4 = parsed.embeddedIPv4 { return v4.description }
        return parsed.bytes[0..<8].map { String($0, radix: 16) }.joined(separator: ".") + "::/64"
    }

    /// Seconds until `address` may try again, or nil when it may now.
    public func retryAfter(_ address: String, now: Double) -> Int? {
        let key = Self.key(address)
        return state.withLock { state -> Int? in
            guard let entry = state.entries[key] else { return nil }
            let end = entry.windowStart + window
            guard now < end else {
                state.entries[key] = nil
                return nil
            }
            return entry.failures >= limit ? max(1, Int((end - now).rounded(.up))) : nil
        }
    }

    /// Counts a failed authentication from `address`.
    public func failed(_ address: String, now: Double) {
        let key = Self.key(address)
        state.withLock { state in
            if var entry = state.entries[key], now < entry.windowStart + window {
                entry.failures += 1
                state.entries[key] = entry
                return
            }
            if state.entries[key] == nil, state.entries.count >= capacity {
                guard now - state.lastSweep >= 1 else { return }
                state.lastSweep = now
                state.entries = state.entries.filter { now < $0.value.windowStart + window }
                guard state.entries.count < capacity else { return }
            }
            state.entries[key] = Entry(windowStart: now, failures: 1)
        }
    }

    /// Addresses tracked now (for tests and metrics).
    public var tracked: Int { state.withLock { $0.entries.count } }
}
