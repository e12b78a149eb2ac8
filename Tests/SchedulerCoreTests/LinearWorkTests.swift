import Foundation
import SchedulerCore
import Testing

/// Work grows linearly with what a caller sends: doubling an input's size twice (n, 2n, 4n)
/// must multiply the time by about four, not sixteen. Each size is timed as the fastest of
/// three runs, so a busy machine slows a run but cannot make the curve bend.
@Suite("Work linear in the input")
struct LinearWorkTests {
    /// The fastest of three runs of `work` on `input`, in seconds.
    static func fastest<Input>(_ input: Input, _ work: (Input) throws -> Void) rethrows -> Double {
        var best = Double.infinity
        for _ in 0..<3 {
            let start = ContinuousClock.now
            try work(input)
            let elapsed = ContinuousClock.now - start
            best = min(best, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        }
        return best
    }

    /// Times `work` on inputs of `base`, 2 `base` and 4 `base` and checks that four times the
    /// input took under eight times as long (linear: about 4; quadratic: about 16).
    static func expectLinear<Input>(
        _ name: String, base: Int, make: (Int) -> Input, _ work: (Input) throws -> Void,
        sourceLocation: SourceLocation = #_sourceLocation
    ) rethrows {
        let small = try fastest(make(base), work)
        let large = try fastest(make(4 * base), work)
        let ratio = large / max(small, 1e-6)
        #expect(ratio < 8, "\(name): \(base) took \(small) s, \(4 * base) took \(large) s (x\(ratio))", sourceLocation: sourceLocation)
    }

    static func object(keys: Int) -> String {
        "{" + (0..<keys).map { #""key-\#($0)":\#($0)"# }.joined(separator: ",") + "}"
    }

    @Test("a JSON object's keys: parsing, reading each key, serializing")
    func objects() throws {
        try Self.expectLinear("parse", base: 10_000, make: Self.object(keys:)) { text in
            _ = try JSONParser.parse(text)
        }
        try Self.expectLinear("lookups", base: 10_000, make: { try! JSONParser.parse(Self.object(keys: $0)).objectValue! }) { object in
            for index in stride(from: 0, to: object.count, by: 1) { _ = object["key-\(index)"] }
        }
        try Self.expectLinear("serialize", base: 10_000, make: { try! JSONParser.parse(Self.object(keys: $0)) }) { value in
            _ = value.serialized
        }
    }

    @Test("a repeated key keeps its last value in its first place; keys differ by their bytes")
    func repeatedKeys() throws {
        let object = try #require(try JSONParser.parse(#"{"a":1,"b":2,"a":3}"#).objectValue)
        #expect(object.keys == ["a", "b"])
        #expect(object["a"] == .int(3))
        // "é" precomposed and "e" with a combining accent are two keys, as in the text.
        let accents = try #require(try JSONParser.parse("{\"\u{E9}\":1,\"e\u{301}\":2}").objectValue)
        #expect(accents.count == 2)
        #expect(accents["\u{E9}"] == .int(1))
        #expect(accents.serializedText == "{\"\u{E9}\":1,\"e\u{301}\":2}")
        // Removing a key keeps the others found.
        var copy = object
        copy["a"] = nil
        #expect(copy.keys == ["b"])
        #expect(copy["b"] == .int(2))
        copy["c"] = .int(4)
        #expect(copy["c"] == .int(4) && copy.keys == ["b", "c"])
    }

    @Test("a schedule's validation: a payload of many keys, long strings, many combining marks")
    func validation() throws {
        let now = Date()
        func validate(_ body: String) throws {
            _ = ScheduleValidation.fields(from: try JSONParser.parse(body), existing: nil, partial: false, now: now)
        }
        try Self.expectLinear(
            "payload keys", base: 4_000,
            make: { #"{"endpoint":"http://example.org/hook","payload":\#(Self.object(keys: $0))}"# }, validate)
        try Self.expectLinear(
            "auth_token of combining marks", base: 50_000,
            make: { #"{"endpoint":"http://example.org/hook","auth_token":"a\#(String(repeating: "\u{301}", count: $0))"}"# }, validate)
        try Self.expectLinear(
            "endpoint", base: 50_000,
            make: { #"{"endpoint":"http://example.org/\#(String(repeating: "a\u{301}", count: $0))"}"# }, validate)
    }

    @Test("bounds count UTF-8 bytes: one letter and 200,000 combining marks is not one character")
    func bytesNotGraphemes() throws {
        let marks = "a" + String(repeating: "\u{301}", count: 200_000)
        #expect(marks.count == 1)
        let result = ScheduleValidation.fields(
            from: .object(["endpoint": .string("http://example.org/hook"), "auth_token": .string(marks)]), existing: nil,
            partial: false, now: Date())
        guard case .failure(let errors) = result else {
            Issue.record("a 400 KB auth_token was accepted")
            return
        }
        #expect(errors.messages(for: "auth_token") == ["Ensure this field has no more than 1024 bytes (UTF-8)."])
        // 1,024 bytes are fine, 1,025 are not, whatever characters they make.
        let fits = String(repeating: "\u{E9}", count: 512)
        #expect(throws: Never.self) {
            try ScheduleValidation.fields(
                from: .object(["endpoint": .string("http://example.org/hook"), "auth_token": .string(fits)]), existing: nil,
                partial: false, now: Date()
            ).get()
        }
        #expect(!ScheduleValidation.isHTTPURL("http://example.org/" + String(repeating: "\u{E9}", count: 1015)))
        #expect(ScheduleValidation.isHTTPURL("http://example.org/" + String(repeating: "e", count: 2029)))
        #expect(!ScheduleValidation.isEmail("a" + String(repeating: "\u{301}", count: 300) + "@example.org"))
    }
}

extension JSONObject {
    fileprivate var serializedText: String { JSONValue.object(self).serialized }
}
