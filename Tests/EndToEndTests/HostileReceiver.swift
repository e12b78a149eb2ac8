import Foundation
import Synchronization

/// A receiver that misbehaves on purpose, on a raw TCP socket so that it can send what no
/// HTTP library would: each path gets its scripted answer (bytes written as they are), or
/// no answer at all, or a connection closed half-way. It counts requests by path.
///
/// Threads of its own (one to accept, one per connection): it is test code, and blocking
/// sockets keep it short.
final class HostileReceiver: Sendable {
    enum Behaviour: Sendable {
        /// Write these bytes, then close.
        case raw([UInt8])
        /// Read the request and never answer (until the peer gives up).
        case silence
    }

    private let listener: Int32
    let port: Int
    private let scripts: [String: Behaviour]
    private let counts = Mutex<[String: Int]>([:])
    private let stopped = Mutex(false)

    init(_ scripts: [String: Behaviour]) throws {
        self.scripts = scripts
        (listener, port) = try LoopbackSocket.listen()
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)/\(path)" }

    func count(_ path: String) -> Int { counts.withLock { $0[path] ?? 0 } }

    func stop() {
        stopped.withLock { $0 = true }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func acceptLoop() {
        while !stopped.withLock({ $0 }) {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            let thread = Thread { [self] in serve(connection) }
            thread.start()
        }
    }

    private func serve(_ connection: Int32) {
        defer { close(connection) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        // One request per connection: read the head, then the body it announces.
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        var headEnd: Int?
        while headEnd == nil {
            let count = read(connection, &buffer, buffer.count)
            guard count > 0 else { return }
            received += buffer[0..<count]
            headEnd = received.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound
        }
        let head = String(decoding: received[0..<headEnd!], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        let path = lines.first?.split(separator: " ").dropFirst().first.map { String($0.dropFirst()) } ?? ""
        let announced =
            lines.first { $0.lowercased().hasPrefix("content-length:") }.flatMap {
                Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))
            }
            ?? 0
        var bodyBytes = received.count - headEnd!
        while bodyBytes < announced {
            let count = read(connection, &buffer, buffer.count)
            guard count > 0 else { return }
            bodyBytes += count
        }
        counts.withLock { $0[path, default: 0] += 1 }
        switch scripts[path] ?? .raw(Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)) {
        case .raw(let bytes):
            var offset = 0
            while offset < bytes.count {
                // MSG_NOSIGNAL: a client that stopped reading must not raise SIGPIPE in the tests.
                let written = bytes[offset...].withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard written > 0 else { return }
                offset += written
            }
        case .silence:
            // Hold the connection until the client gives up (or 30 s pass).
            _ = read(connection, &buffer, buffer.count)
        }
    }
}

extension HostileReceiver.Behaviour {
    /// A status line, headers and a body, with `Connection: close`.
    static func answer(_ statusLine: String, headers: [String] = [], body: [UInt8] = []) -> Self {
        let head = ([statusLine] + headers + ["Content-Length: \(body.count)", "Connection: close"]).joined(separator: "\r\n") + "\r\n\r\n"
        return .raw(Array(head.utf8) + body)
    }
}
