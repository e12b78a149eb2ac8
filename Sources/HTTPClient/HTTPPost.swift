/// An outgoing POST.
public struct HTTPPost: Sendable {
    public let id: UInt64
    public let url: String
    public let headers: [String]
    public let body: [UInt8]
    /// Seconds for the answer, counted from when the request is sent.
    public let timeout: Double
    /// Seconds to connect (TCP and TLS), counted apart from `timeout`.
    public let connectTimeout: Double
    /// Whether the poster's egress guard judges the addresses this POST connects to (false
    /// for a host an operator allowed by name).
    public let guarded: Bool
    /// Whether `validated()` made it: its fields cannot change since, so `HTTPPoster` and
    /// libcurl's set-up take it without checking it again.
    public private(set) var isValidated = false

    public init(
        id: UInt64, url: String, headers: [String], body: [UInt8], timeout: Double, connectTimeout: Double = 10, guarded: Bool = true
    ) {
        self.id = id
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.guarded = guarded
    }
}

extension HTTPPost {
    /// Refuses a URL or header with a control character (CR and LF above all: they would
    /// end the header and begin another, or a second request) or a URL with spaces.
    public func validate() throws(HTTPPostError) {
        if Self.holds(url, { $0 < 0x21 || $0 == 0x7F }) {
            throw HTTPPostError(description: "the URL holds a space or control character")
        }
        for header in headers where Self.holds(header, { ($0 < 0x20 && $0 != UInt8(ascii: "\t")) || $0 == 0x7F }) {
            let name = header.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
            throw HTTPPostError(description: "the \(name.filter { $0.isLetter || $0 == "-" }) header holds a control character")
        }
    }

    /// This POST, checked (`validate`) and marked so: `HTTPPoster` and libcurl's set-up take
    /// it without checking it again.
    public func validated() throws(HTTPPostError) -> HTTPPost {
        try validate()
        var checked = self
        checked.isValidated = true
        return checked
    }

    /// Whether a byte of `text` is one of these; over the string's own storage when it has
    /// one (every POST's URL and headers are checked: a byte loop, not an iterator's).
    private static func holds(_ text: String, _ refused: (UInt8) -> Bool) -> Bool {
        var text = text
        return text.withUTF8 { bytes in bytes.contains(where: refused) }
    }
}
