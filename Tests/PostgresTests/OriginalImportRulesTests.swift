import Foundation
import SchedulerCore
import SchedulerStore
import Testing

/// The import's rules that need no database: the bytes the original sent, which tokens and
/// hooks can be kept.
@Suite struct OriginalImportRulesTests {
    @Test(arguments: [
        // PostgreSQL's jsonb text → Python's json.dumps of it, as the original's worker sent it.
        (#"{"a": 1, "b": [true, false, null]}"#, #"{"a": 1, "b": [true, false, null]}"#),
        (#"{"price": 2.50, "big": 1E+3, "small": 1e-7, "n": -0.5}"#, #"{"price": 2.5, "big": 1000.0, "small": 1e-07, "n": -0.5}"#),
        (#"{"name": "café ☕ 𝄞"}"#, #"{"name": "caf\u00e9 \u2615 \ud834\udd1e"}"#),
        (#"{"quote": "a \"b\" \\ c\n", "e": "1.5e3"}"#, #"{"quote": "a \"b\" \\ c\n", "e": "1.5e3"}"#),
        ("{\"del\": \"\u{7F}\"}", #"{"del": "\u007f"}"#),
        (#"{"huge": 12345678901234567890123}"#, #"{"huge": 12345678901234567890123}"#),
        (#"{"inf": 1e999}"#, #"{"inf": Infinity}"#),
    ])
    func payloadsAreSentAsTheOriginalSentThem(_ jsonb: String, _ python: String) {
        #expect(OriginalImport.pythonJSON(jsonb) == python)
    }

    @Test func tokensThatCannotBeKeptAreSaidWhy() {
        #expect(OriginalImport.tokenProblem("9f8e7d6c5b4a39281706f5e4d3c2b1a098765432") == nil)
        #expect(OriginalImport.tokenProblem("") == "the token is empty")
        #expect(OriginalImport.tokenProblem("with space") != nil)
        #expect(OriginalImport.tokenProblem("line\r\nbreak") != nil)
        #expect(OriginalImport.tokenProblem("é") != nil)
        #expect(OriginalImport.tokenProblem(String(repeating: "a", count: 129)) == "the token is longer than 128 bytes")
    }

    @Test func hooksThisServiceWouldRefuseAreSaidWhy() {
        let egress = EgressPolicy()
        #expect(OriginalImport.hookProblem(event: "schedule.added", target: "https://hooks.example.org/in", egress: egress) == nil)
        #expect(OriginalImport.hookProblem(event: "schedule.exploded", target: "https://hooks.example.org/in", egress: egress) != nil)
        #expect(OriginalImport.hookProblem(event: "schedule.added", target: "ftp://x", egress: egress)?.hasPrefix("target:") == true)
        #expect(
            OriginalImport.hookProblem(event: "schedule.added", target: "http://10.0.0.1/in", egress: egress)?.contains("may not go")
                == true)
        #expect(OriginalImport.hookProblem(event: "schedule.added", target: "http://a.example/\r\nX: y", egress: egress) != nil)
    }
}
