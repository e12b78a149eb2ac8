import Foundation

/// The parts of an `amqp://user:password@host:port/vhost` URL (vhost `%2f` is `/`).
public struct AMQPEndpoint: Sendable, Equatable {
    public let host: String
    public let port: Int
    public let virtualHost: String
    public let user: String
    public let password: String

    public init(url: String) throws {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased() else {
            throw AMQPError(kind: .usage, message: "'\(url)' is not an amqp:// URL")
        }
        guard scheme == "amqp" else {
            throw AMQPError(kind: .usage, message: "only amqp:// URLs are supported (TLS is not), got \(scheme)://")
        }
        host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "localhost"
        port = components.port ?? 5672
        guard (1...65535).contains(port) else { throw AMQPError(kind: .usage, message: "port \(port) of the broker URL is out of range") }
        user = components.user?.removingPercentEncoding ?? "guest"
        password = components.password?.removingPercentEncoding ?? "guest"
        let path = components.percentEncodedPath
        if path.isEmpty || path == "/" {
            virtualHost = "/"
        } else {
            virtualHost = String(path.dropFirst()).removingPercentEncoding ?? "/"
        }
    }
}
