import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A plain TCP connection to a port on 127.0.0.1, for sending what no HTTP client would (a
/// made-up `Host`, half a request line) and seeing what the server does. Its calls are
/// short (`poll` with a timeout); tests use it from a task of their own.
public final class RawSocket: @unchecked Sendable {
    // One test owns each socket and uses it from one task at a time.
    private let descriptor: Int32

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let code = errno
            Glibc.close(descriptor)
            throw Failure(description: "connect: errno \(code)")
        }
    }

    deinit { Glibc.close(descriptor) }

    public func send(_ text: String) throws {
        var bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.send(descriptor, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure(description: "send: errno \(errno)") }
            sent += n
        }
    }

    /// Reads until the peer closes, or `timeout` seconds pass; returns what arrived and
    /// whether the peer closed.
    public func read(timeout: Double) -> (text: String, closed: Bool) {
        var received: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return (String(decoding: received, as: UTF8.self), false) }
            var pending = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pending, 1, Int32(min(left, 1) * 1000))
            if ready <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return (String(decoding: received, as: UTF8.self), true) }
            received.append(contentsOf: buffer[0..<n])
        }
    }

    /// Whether the peer has closed the connection (without waiting).
    public var closedByPeer: Bool {
        var pending = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&pending, 1, 0) > 0 else { return false }
        var byte: UInt8 = 0
        return recv(descriptor, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) <= 0
    }

    /// Sends one request and returns the whole answer (the request asks the server to close).
    public static func exchange(port: Int, _ request: String, timeout: Double = 10) async throws -> String {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                do {
                    let socket = try RawSocket(port: port)
                    try socket.send(request)
                    continuation.resume(returning: socket.read(timeout: timeout).text)
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}
