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
                    text[at] = Self.hexDigits[Int(byte >> 4)]
                    text[at + 1] = Self.hexDigits[Int(byte & 0x0F)]
                    at += 2
                }
                return at
            }
        }
    }

    /// Reads the canonical text in either case (what `UUID(uuidString:)` accepts); nil
    /// for anything else.
    public init?(text: some StringProtocol) {
        var bytes = [UInt8](repeating: 0, count: 16)
        var count = 0
        var index = 0
        for character in text.utf8 {
            defer { index += 1 }
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard character == UInt8(ascii: "-") else { return nil }
                continue
            }
            guard index < 36, let value = Self.hexValue(character) else { return nil }
            if count % 2 == 0 { bytes[count / 2] = value << 4 } else { bytes[count / 2] |= value }
            count += 1
        }
        guard index == 36, count == 32 else { return nil }
        self.init(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            ))
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private static func hexValue(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
