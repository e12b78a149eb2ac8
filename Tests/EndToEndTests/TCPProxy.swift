import Foundation
import Synchronization

/// A TCP proxy on 127.0.0.1 in front of another local port, that can turn the connections
/// it carries into half-open ones: `freeze()` keeps their sockets open but drops every byte
/// from then on, both ways, as a peer that vanished without a word (a cable pulled, a
/// host frozen) would. Connections made after a freeze are carried normally.
///
/// Threads of its own (one to accept, two per connection): it is test code.
final class TCPProxy: Sendable {
    final class Link: Sendable {
        let frozen = Mutex(false)
    }

    private let listener: Int32
    let port: Int
    private let upstreamPort: Int
    private let links = Mutex<[Link]>([])
    private let stopped = Mutex(false)

    init(upstreamPort: Int) throws {
        self.upstreamPort = upstreamPort
        (listener, port) = try LoopbackSocket.listen(backlog: 64)
        Thread { [self] in acceptLoop() }.start()
    }

    /// Every connection carried now goes silent (new ones are carried normally).
    func freeze() {
        links.withLock { links in
            for link in links { link.frozen.withLock { $0 = true } }
        }
    }

    /// How many connections the proxy has carried so far.
    var connections: Int { links.withLock { $0.count } }

    func stop() {
        stopped.withLock { $0 = true }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func acceptLoop() {
        while !stopped.withLock({ $0 }) {
            let client = accept(listener, nil, nil)
            guard client >= 0 else { return }
            let upstream = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = LoopbackSocket.address(port: upstreamPort)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard connected == 0 else {
                close(client)
                close(upstream)
                continue
            }
            let link = Link()
            links.withLock { $0.append(link) }
            Thread { Self.pump(from: client, to: upstream, link: link) }.start()
            Thread { Self.pump(from: upstream, to: client, link: link) }.start()
        }
    }

    /// Copies bytes until either side closes; while frozen, reads and drops them.
    private static func pump(from source: Int32, to destination: Int32, link: Link) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(source, &buffer, buffer.count)
            guard count > 0 else { break }
            if link.frozen.withLock({ $0 }) { continue }
            var offset = 0
            while offset < count {
                let written = buffer[offset..<count].withUnsafeBytes { send(destination, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard written > 0 else { break }
                offset += written
            }
        }
        if !link.frozen.withLock({ $0 }) {
            shutdown(destination, Int32(SHUT_RDWR))
        }
    }
}
