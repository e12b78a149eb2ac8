import Foundation

/// The parts of an `amqp://user:password@host:port/vhost` URL (vhost `%2f` is `/`). A
/// cluster's nodes are listed as several hosts, comma-separated, as libpq does:
/// `amqp://user:password@node1:5672,node2:5672,node3:5672/vhost`.
///
/// `amqps://` is TLS (port 5671 by default), with the peer's certificate and host name
/// verified; RabbitMQ's URI query parameters say how: `cacertfile` (the CA bundle; the
/// system's by default), `certfile` and `keyfile` (a client certificate, both or neither),
/// `verify=verify_none` (no verification: never in production).
public struct AMQPEndpoint: Sendable, Equatable {
    /// How a TLS connection verifies the broker and shows itself.
    public struct TLS: Sendable, Equatable {
        public var caFile: String?
        public var certificateFile: String?
        public var keyFile: String?
        public var verify: Bool

        /// Debian's (and most distributions') bundle of trusted CAs.
        public static let systemCAFile = "/etc/ssl/certs/ca-certificates.crt"
    }

    public struct Node: Sendable, Hashable, CustomStringConvertible {
        public let host: String
        public let port: Int

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// In the order given: a connection goes to the first that answers.
    public let nodes: [Node]
    public let virtualHost: String
    public let user: String
    public let password: String
    /// nil for `amqp://`.
    public let tls: TLS?

    public init(url: String) throws {
        guard let separator = url.range(of: "://") else { throw AMQPError(kind: .usage, message: "'\(url)' is not an amqp:// URL") }
        let scheme = url[..<separator.lowerBound].lowercased()
        guard scheme == "amqp" || scheme == "amqps" else {
            throw AMQPError(kind: .usage, message: "the broker URL must be amqp:// or amqps://, got \(scheme)://")
        }
        let rest = url[separator.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var path = rest[authorityEnd...]
        var query: Substring = ""
        if let start = path.firstIndex(where: { $0 == "?" || $0 == "#" }) {
            if path[start] == "?" { query = path[path.index(after: start)...].prefix { $0 != "#" } }
            path = path[..<start]
        }
        tls = scheme == "amqps" ? try Self.tls(query) : nil
        var hosts = authority
        var (user, password) = ("guest", "guest")
        if let at = authority.lastIndex(of: "@") {
            let credentials = authority[..<at]
            hosts = authority[authority.index(after: at)...]
            let parts = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            user = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            if parts.count > 1 { password = String(parts[1]).removingPercentEncoding ?? String(parts[1]) }
        }
        self.user = user
        self.password = password
        var nodes: [Node] = []
        for spelled in hosts.split(separator: ",", omittingEmptySubsequences: false) {
            nodes.append(try Self.node(String(spelled), defaultPort: tls == nil ? 5672 : 5671))
        }
        self.nodes = nodes
        if path.isEmpty || path == "/" {
            virtualHost = "/"
        } else {
            virtualHost = String(path.dropFirst()).removingPercentEncoding ?? "/"
        }
    }

    /// The nodes in the order to try them: `preferred` (the one that answered last) first,
    /// then the others as given.
    public func ordered(preferring preferred: Node?) -> [Node] {
        guard let preferred, let index = nodes.firstIndex(of: preferred) else { return nodes }
        var order = nodes
        order.remove(at: index)
        return [preferred] + order
    }

    /// The TLS parameters of an `amqps://` URL's query; other parameters are ignored.
    private static func tls(_ query: Substring) throws -> TLS {
        var tls = TLS(caFile: nil, certificateFile: nil, keyFile: nil, verify: true)
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
            guard !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
                throw AMQPError(kind: .usage, message: "the broker URL's \(name) has a control character")
            }
            switch name {
            case "cacertfile": tls.caFile = value
            case "certfile": tls.certificateFile = value
            case "keyfile": tls.keyFile = value
            case "verify":
                guard value == "verify_peer" || value == "verify_none" else {
                    throw AMQPError(kind: .usage, message: "the broker URL's verify must be verify_peer or verify_none, got '\(value)'")
                }
                tls.verify = value == "verify_peer"
            default: continue
            }
        }
        guard (tls.certificateFile == nil) == (tls.keyFile == nil) else {
            throw AMQPError(kind: .usage, message: "the broker URL needs both certfile and keyfile for a client certificate, or neither")
        }
        return tls
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`; an empty host is localhost.
    private static func node(_ spelled: String, defaultPort: Int) throws -> Node {
        var host = spelled
        var port = defaultPort
        if spelled.hasPrefix("["), let close = spelled.firstIndex(of: "]") {
            host = String(spelled[spelled.index(after: spelled.startIndex)..<close])
            let after = spelled[spelled.index(after: close)...]
            if after.hasPrefix(":") { port = try Self.port(String(after.dropFirst())) }
        } else if let colon = spelled.lastIndex(of: ":") {
            host = String(spelled[..<colon])
            port = try Self.port(String(spelled[spelled.index(after: colon)...]))
        }
        guard !host.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7F || "/@[]".unicodeScalars.contains($0) }) else {
            throw AMQPError(kind: .usage, message: "'\(spelled)' is not a broker host")
        }
        return Node(host: host.isEmpty ? "localhost" : host, port: port)
    }

    private static func port(_ text: String) throws -> Int {
        guard let port = Int(text), (1...65535).contains(port) else {
            throw AMQPError(kind: .usage, message: "port \(text) of the broker URL is out of range")
        }
        return port
    }
}
