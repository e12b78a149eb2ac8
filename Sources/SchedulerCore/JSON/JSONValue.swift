/// A JSON document that keeps what clients sent: object keys stay in their order and
/// numbers keep their literal text, so a payload reaches the receiver as it was given.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// A number, kept as its (validated) literal text.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public static func int(_ value: Int) -> JSONValue { .number(String(value)) }

    /// The name of this value's kind, as error messages say it.
    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "bool"
        case .number: "number"
        case .string: "str"
        case .array: "list"
        case .object: "dict"
        }
    }

    public var objectValue: JSONObject? {
        if case .object(let object) = self { return object }
        return nil
    }

    public var stringValue: String? {
        if case .string(let string) = self { return string }
        return nil
    }

    /// The value as an integer when it is a number without a fraction (`3`, `3.0`, `3e2`).
    public var integerValue: Int? {
        guard case .number(let literal) = self else { return nil }
        if let int = Int(literal) { return int }
        guard let double = Double(literal), double.rounded() == double, abs(double) < 9.0e15 else { return nil }
        return Int(double)
    }
}

/// A JSON object whose keys keep their order. A repeated key keeps its last value, in
/// the place of its first appearance. Keys are compared byte for byte (as JSON texts are,
/// not by Unicode equivalence) and found through an index, so building an object of n
/// keys costs O(n), whatever a client sends.
public struct JSONObject: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    public private(set) var entries: [(key: String, value: JSONValue)] = []
    /// Where each key is in `entries`.
    private var positions: [KeyBytes: Int] = [:]

    /// A key hashed and compared by its UTF-8 bytes.
    private struct KeyBytes: Hashable {
        let text: String
        init(_ text: String) { self.text = text }
        static func == (lhs: KeyBytes, rhs: KeyBytes) -> Bool { lhs.text.utf8.elementsEqual(rhs.text.utf8) }
        func hash(into hasher: inout Hasher) {
            var text = text
            text.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        }
    }

    public init() {}

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        for (key, value) in elements { self[key] = value }
    }

    public var keys: [String] { entries.map(\.key) }

    public var count: Int { entries.count }

    public subscript(key: String) -> JSONValue? {
        get { positions[KeyBytes(key)].map { entries[$0].value } }
        set {
            let wrapped = KeyBytes(key)
            if let index = positions[wrapped] {
                if let newValue {
                    entries[index].value = newValue
                } else {
                    // Rare (a field left out of a copy): the positions after it move down.
                    entries.remove(at: index)
                    positions[wrapped] = nil
                    for later in index..<entries.count { positions[KeyBytes(entries[later].key)] = later }
                }
            } else if let newValue {
                positions[wrapped] = entries.count
                entries.append((key, newValue))
            }
        }
    }

    public func contains(_ key: String) -> Bool { positions[KeyBytes(key)] != nil }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.entries.count == rhs.entries.count
            && zip(lhs.entries, rhs.entries).allSatisfy { $0.key.utf8.elementsEqual($1.key.utf8) && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for entry in entries {
            hasher.combine(KeyBytes(entry.key))
            hasher.combine(entry.value)
        }
    }
}
