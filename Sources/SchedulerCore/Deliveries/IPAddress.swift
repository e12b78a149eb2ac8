/// An IPv4 (4 bytes) or IPv6 (16 bytes) address, parsed in pure Swift.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// Dotted-quad IPv4 (`10.0.0.1`) or IPv6 (`::1`, `::ffff:10.0.0.1`); no zone ids.
    public init?(_ text: String) {
        if text.contains(":") {
            guard let bytes = Self.ipv6(text) else { return nil }
            self.bytes = bytes
        } else {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var bytes: [UInt8] = []
            for part in parts {
                guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }), let value = UInt8(part) else {
                    return nil
                }
                bytes.append(value)
            }
            self.bytes = bytes
        }
    }

    /// Every spelling a resolver (`inet_aton`) takes for IPv4: one to four parts, each
    /// decimal, octal (leading 0) or hex (0x); the last part fills the remaining bytes
    /// (`2852039166`, `0xA9FEA9FE`, `0251.0376.0251.0376`, `127.1`).
    public init?(numericIPv4 text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...4).contains(parts.count) else { return nil }
        var values: [UInt64] = []
        for part in parts {
            let lower = part.lowercased()
            let value: UInt64?
            if lower.hasPrefix("0x") {
                value = lower.count > 2 && lower.count <= 10 ? UInt64(lower.dropFirst(2), radix: 16) : (lower == "0x" ? 0 : nil)
            } else if lower.hasPrefix("0") && lower.count > 1 {
                value = lower.count <= 12 ? UInt64(lower.dropFirst(), radix: 8) : nil
            } else {
                value = lower.count <= 10 ? UInt64(lower) : nil
            }
            guard let value else { return nil }
            values.append(value)
        }
        var bytes: [UInt8] = []
        for value in values.dropLast() {
            guard value <= 0xFF else { return nil }
            bytes.append(UInt8(value))
        }
        let remaining = 4 - bytes.count
        guard let last = values.last, last < (UInt64(1) << (8 * UInt64(remaining))) else { return nil }
        for shift in stride(from: remaining - 1, through: 0, by: -1) {
            bytes.append(UInt8((last >> (8 * UInt64(shift))) & 0xFF))
        }
        self.bytes = bytes
    }

    /// The IPv4 address inside an IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible
    /// (`::/96`, not `::` or `::1`) or NAT64 (`64:ff9b::/96`) IPv6 address.
    public var embeddedIPv4: IPAddress? {
        guard bytes.count == 16 else { return nil }
        let head = Array(bytes[0..<12])
        let tail = Array(bytes[12..<16])
        let mapped = head == Array(repeating: 0, count: 10) + [0xFF, 0xFF]
        let nat64 = head == [0x00, 0x64, 0xFF, 0x9B] + Array(repeating: 0, count: 8)
        let compatible = head == Array(repeating: 0, count: 12) && tail.reduce(0, { $0 | UInt32($1) }) > 1
        return mapped || nat64 || compatible ? IPAddress(bytes: tail) : nil
    }

    public var description: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }

    private static func ipv6(_ text: String) -> [UInt8]? {
        guard !text.contains("%"), text.count <= 45 else { return nil }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt8]? {
            if part.isEmpty { return [] }
            var bytes: [UInt8] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (index, piece) in pieces.enumerated() {
                if index == pieces.count - 1, piece.contains(".") {
                    guard let v4 = IPAddress(String(piece)), v4.bytes.count == 4 else { return nil }
                    bytes += v4.bytes
                } else {
                    guard (1...4).contains(piece.count), let value = UInt16(piece, radix: 16) else { return nil }
                    bytes += [UInt8(value >> 8), UInt8(value & 0xFF)]
                }
            }
            return bytes
        }
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 1 { return head.count == 16 ? head : nil }
        guard let tail = groups(halves[1]), head.count + tail.count <= 14 else { return nil }
        return head + Array(repeating: 0, count: 16 - head.count - tail.count) + tail
    }
}
