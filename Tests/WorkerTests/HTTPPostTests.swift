import HTTPClient
import Testing

/// What a POST may carry in its URL and headers before it reaches libcurl.
@Suite struct HTTPPostTests {
    func post(url: String = "https://r.example/hook?a=1", headers: [String] = ["Content-Type: application/json"]) -> HTTPPost {
        HTTPPost(id: 1, url: url, headers: headers, body: [], timeout: 1)
    }

    @Test("a URL with a space or a control character is refused; others pass")
    func url() {
        #expect(throws: Never.self) { try post().validate() }
        #expect(throws: Never.self) { try post(url: "https://r.example/ü?q=%20x~").validate() }
        for bad in ["https://r.example/a b", "https://r.example/\r\nHost: x", "https://r.example/\u{0}", "https://r.example/\u{7F}"] {
            #expect(throws: HTTPPostError.self) { try post(url: bad).validate() }
        }
    }

    @Test("a header with CR, LF, NUL or DEL is refused, named; a tab passes")
    func headers() {
        #expect(throws: Never.self) { try post(headers: ["X-A: a\tb", "X-B: ünïcode"]).validate() }
        for bad in ["Authorization: Token a\r\nX-Injected: 1", "X-A: a\nb", "X-A: \u{0}", "X-A: \u{7F}"] {
            #expect {
                try post(headers: ["Content-Type: application/json", bad]).validate()
            } throws: { error in
                (error as? HTTPPostError)?.description.hasSuffix("header holds a control character") == true
            }
        }
    }

    @Test("validated() checks as validate() does and marks what passed; a POST made anew is not marked")
    func validatedOnce() throws {
        #expect(try post().validated().isValidated)
        #expect(!post().isValidated)
        #expect(throws: HTTPPostError.self) { try post(headers: ["X-A: a\r\nX-B: b"]).validated() }
        #expect(throws: HTTPPostError.self) { try post(url: "https://r.example/a b").validated() }
    }
}
