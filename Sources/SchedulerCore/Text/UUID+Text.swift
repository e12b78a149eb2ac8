import Foundation

/// UUIDs to and from their canonical text (8-4-4-4-12 hex digits) byte by byte. Foundation
/// on Linux formats with `snprintf` and parses with `sscanf`, and `lowercased()` is a
/// Foundation string pass: on the delivery path (ids in SQL, message ids, headers, row
/// decoding) they cost a few percent of a burst's CPU (bench/README.md).
extension UUID {
    /// The canonical text in lower case, as PostgreSQL writes a uuid.
    public var lowercasedText: String {
        withUnsafeBytes(of: uuid) { bytes in
            String(unsafeUninitializedCapacity: 36) { text in
                var at = 0
                for (index, byte) in bytes.enumerated() {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        text[at] = UInt8(ascii: "-")
                        at += 1
                    }
                    text[at] = Self.hexDigit(byte >> 4)
                    text[at + 1] = Self.hexDigit(byte & 0x0F)
                    at += 2
                }
                return at
            }
        }
    }

    /// Reads the canonical text, in either case; nil for anything else. Into the value's own
    /// bytes: no array per id (an id is read per job, and per row of a read of targets).
    public init?(text: some StringProtocol) {
        var value: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let read = withUnsafeMutableBytes(of: &value) { bytes in
            var count = 0
            var index = 0
            for character in text.utf8 {
                defer { index += 1 }
                if index == 8 || index == 13 || index == 18 || index == 23 {
                    guard character == UInt8(ascii: "-") else { return false }
                    continue
                }
                guard index < 36, let value = Self.hexValue(character) else { return false }
                if count % 2 == 0 { bytes[count / 2] = value << 4 } else { bytes[count / 2] |= value }
                count += 1
            }
            return index == 36 && count == 32
        }
        guard read else { return nil }
        self.init(uuid: value)
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "a") + value - 10
    }

    private static func hexValue(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
