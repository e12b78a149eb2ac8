import Foundation

/// Which addresses deliveries may reach. By default it refuses the operator's own networks:
/// loopback, link-local (cloud metadata), private (RFC 1918), carrier-grade NAT, unique-local
/// IPv6, multicast, `0.0.0.0/8` and the other reserved ranges, in every spelling (IPv4-mapped
/// IPv6, NAT64, numeric and octal or hex IPv4). `EGRESS_ALLOW` opens CIDRs and host names.
public struct EgressPolicy: Sendable, Equatable {
    /// An address range.
    public struct Range: Sendable, Equatable, CustomStringConvertible {
        public let address: IPAddress
        public let prefix: Int
        public let name: String

        public func contains(_ candidate: IPAddress) -> Bool {
            guard candidate.bytes.count == address.bytes.count else { return false }
            var left = prefix
            for (a, b) in zip(candidate.bytes, address.bytes) {
                if left <= 0 { return true }
                let mask: UInt8 = left >= 8 ? 0xFF : ~(0xFF >> UInt8(left))
                if a & mask != b & mask { return false }
                left -= 8
            }
            return true
        }

        public var description: String { "\(address)/\(prefix)" }

        /// `10.0.0.0/8`, `fd00::/8` or a bare address (a /32 or /128).
        public init?(cidr text: String, name: String = "allowed") {
            let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            guard let address = IPAddress(String(parts[0])) else { return nil }
            let bits = address.bytes.count * 8
            var prefix = bits
            if parts.count == 2 {
                guard let value = Int(parts[1]), (0...bits).contains(value) else { return nil }
                prefix = value
            }
            self.address = address
            self.prefix = prefix
            self.name = name
        }
    }

    public static let refusedRanges: [Range] = [
        ("0.0.0.0/8", "this network"), ("10.0.0.0/8", "private"), ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"), ("169.254.0.0/16", "link-local"), ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"), ("192.0.2.0/24", "documentation"), ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"), ("198.51.100.0/24", "documentation"), ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"), ("::1/128", "loopback"), ("fe80::/10", "link-local"), ("fc00::/7", "unique-local"),
        ("ff00::/8", "multicast"), ("2001:db8::/32", "documentation"), ("100::/64", "discard"),
    ].map { Range(cidr: $0.0, name: $0.1)! }

    /// What `EGRESS_ALLOW` opens.
    public let allowedRanges: [Range]
    /// Host names (lowercased) whose connections are never refused, wherever they resolve.
    public let allowedHosts: Set<String>

    public init(allowedRanges: [Range] = [], allowedHosts: Set<String> = []) {
        self.allowedRanges = allowedRanges
        self.allowedHosts = allowedHosts
    }

    /// Reads `EGRESS_ALLOW`: CIDRs, addresses and host names, comma-separated.
    public init?(allow text: String) {
        var ranges: [Range] = []
        var hosts: Set<String> = []
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            if let range = Range(cidr: item) {
                ranges.append(range)
            } else if item.contains("/") || item.contains(" ") || item.unicodeScalars.contains(where: ScheduleValidation.isControl) {
                return nil
            } else {
                hosts.insert(item.lowercased())
            }
        }
        self.init(allowedRanges: ranges, allowedHosts: hosts)
    }

    public func allows(host: String) -> Bool {
        allowedHosts.contains(host.lowercased())
    }

    /// Why a connection to `address` is refused, or nil when it may go ahead.
    public func refusal(for address: IPAddress) -> String? {
        if allowedRanges.contains(where: { $0.contains(address) }) { return nil }
        // IPv4 inside IPv6 (mapped ::ffff:a.b.c.d, NAT64 64:ff9b::a.b.c.d): judged as IPv4.
        if let embedded = address.embeddedIPv4 { return refusal(for: embedded) }
        guard let range = Self.refusedRanges.first(where: { $0.contains(address) }) else { return nil }
        return "\(address) is in a refused range (\(range.name), \(range))"
    }

    /// For an endpoint URL: its host as written (see `refusal(forHost:)`).
    public func refusal(forURL url: String) -> String? {
        guard let host = URLComponents(string: url)?.host else { return nil }
        return refusal(forHost: host)
    }

    /// For an endpoint's host as written: a literal address in a refused range is refused
    /// (a host name is judged when it is resolved, at delivery).
    public func refusal(forHost host: String) -> String? {
        if allows(host: host) { return nil }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        guard let address = IPAddress(bare) ?? IPAddress(numericIPv4: bare) else { return nil }
        return refusal(for: address)
    }
}
