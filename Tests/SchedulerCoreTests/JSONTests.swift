import SchedulerCore
import Testing

@Suite("JSON")
struct JSONTests {
    @Test("keeps key order and number literals through a round trip")
    func roundTrip() throws {
        let text = #"{"z":1,"a":[true,false,null,1.50,-0.0,2e10],"m":{"k":"v"},"s":"é ✓ 😀"}"#
        #expect(try JSONParser.parse(text).serialized == text)
    }

    @Test("reads escapes and surrogate pairs, writes control characters escaped")
    func escapes() throws {
        let value = try JSONParser.parse(#"["\"\\\/\b\f\n\r\t","\u00e9\ud83d\ude00","\u0001"]"#)
        #expect(value == .array([.string("\"\\/\u{08}\u{0C}\n\r\t"), .string("é😀"), .string("\u{01}")]))
        #expect(value.serialized == #"["\"\\/\b\f\n\r\t","é😀","\u0001"]"#)
    }

    @Test("whitespace around values is fine")
    func whitespace() throws {
        #expect(try JSONParser.parse(" \n{ \"a\" : [ 1 , 2 ] }\t") == .object(["a": .array([.number("1"), .number("2")])]))
    }

    @Test("a repeated key keeps its last value")
    func duplicateKeys() throws {
        #expect(try JSONParser.parse(#"{"a":1,"b":2,"a":3}"#).serialized == #"{"a":3,"b":2}"#)
    }

    @Test(
        "malformed text is refused with a reason",
        arguments: [
            ("", "Expecting value"), ("{", "Expecting property name enclosed in double quotes"), ("[1,]", "Expecting value"),
            ("{\"a\" 1}", "Expecting ':' delimiter"), ("[1 2]", "Expecting ',' delimiter"), ("\"abc", "Unterminated string"),
            ("01", "Extra data after the JSON value"), ("1.", "Invalid number"), ("-", "Invalid number"), ("tru", "Expecting value"),
            ("\"\\x\"", "Invalid \\escape"), ("\"\\ud800\"", "Unpaired surrogate in string"),
            ("\"a\nb\"", "Invalid control character in string"),
            ("NaN", "Expecting value"), ("{} {}", "Extra data after the JSON value"),
        ])
    func malformed(text: String, reason: String) {
        #expect {
            try JSONParser.parse(text)
        } throws: { error in
            (error as? JSONParseError)?.reason == reason
        }
    }

    @Test("refuses invalid UTF-8 and deep nesting")
    func limits() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xFF, 0x22]) }
        // After an escape, and split by one (a lead byte, the escape, then its continuation).
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0x5C, 0x6E, 0xFF, 0x22]) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xC3, 0x5C, 0x6E, 0xA9, 0x22]) }
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
        let fine = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: Never.self) { try JSONParser.parse(fine) }
    }

    @Test("strings with and without escapes read as the same text")
    func strings() throws {
        #expect(try JSONParser.parse(#""plain ünïcode 😀""#).stringValue == "plain ünïcode 😀")
        #expect(try JSONParser.parse(#""""#).stringValue == "")
        #expect(try JSONParser.parse(#""a\"b\n\u00e9😀\ud83d\ude00 end""#).stringValue == "a\"b\né😀😀 end")
        #expect(try JSONParser.parse(#"{"k\u0041": "v", "k": "w"}"#).objectValue?["kA"]?.stringValue == "v")
    }

    @Test("integers, including whole decimals")
    func integers() throws {
        #expect(try JSONParser.parse("42").integerValue == 42)
        #expect(try JSONParser.parse("4.0").integerValue == 4)
        #expect(try JSONParser.parse("4.5").integerValue == nil)
        #expect(try JSONParser.parse("1e400").integerValue == nil)
    }
}

@Suite("Timestamps")
struct TimestampTests {
    @Test("formats UTC with Z, and microseconds only when present")
    func format() {
        #expect(Timestamp.format(date("2026-11-30T16:32:09Z")) == "2026-11-30T16:32:09Z")
        #expect(Timestamp.format(date("2026-11-30T16:32:09.123456Z")) == "2026-11-30T16:32:09.123456Z")
        #expect(Timestamp.format(date("2026-11-30T16:32:09.5Z")) == "2026-11-30T16:32:09.500000Z")
    }

    @Test(
        "reads ISO 8601 with offsets, and PostgreSQL's text",
        arguments: [
            ("2026-11-30T16:32:09Z", "2026-11-30T16:32:09Z"), ("2026-11-30T18:32:09+02:00", "2026-11-30T16:32:09Z"),
            ("2026-11-30T11:02:09-0530", "2026-11-30T16:32:09Z"), ("2026-11-30 16:32:09.25+00", "2026-11-30T16:32:09.250000Z"),
            ("2026-11-30T16:32", "2026-11-30T16:32:00Z"), ("2026-11-30T16:32:09", "2026-11-30T16:32:09Z"),
            ("1999-12-31T23:59:59.999999Z", "1999-12-31T23:59:59.999999Z"), ("2028-02-29T00:00:00Z", "2028-02-29T00:00:00Z"),
        ])
    func parse(text: String, expected: String) throws {
        #expect(Timestamp.parse(text).map(Timestamp.format) == expected)
    }

    @Test(
        "refuses what is not a time",
        arguments: [
            "", "2026-11-30", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z", "2026-11-30T24:00:00Z", "2026-11-30T16:60:00Z",
            "2026-11-30T16:32:09+25:00", "2026-11-30T16:32:09Zjunk", "tomorrow", "2026-11-30T16:32:09.Z", "0000-01-01T00:00:00Z",
        ])
    func invalid(text: String) {
        #expect(Timestamp.parse(text) == nil)
    }
}
