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
        func isControl(_ byte: UInt8) -> Bool { byte < 0x20 || byte == 0x7F }
        if url.utf8.contains(where: { isControl($0) || $0 == UInt8(ascii: " ") }) {
            throw HTTPPostError(description: "the URL holds a space or control character")
        }
        for header in headers where header.utf8.contains(where: { isControl($0) && $0 != UInt8(ascii: "\t") }) {
            let name = header.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
            throw HTTPPostError(description: "the \(name.filter { $0.isLetter || $0 == "-" }) header holds a control character")
        }
    }
}
