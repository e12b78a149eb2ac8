/// One `HostileReceiver` per path, each on its own port: each path is a receiver of its
/// own (scheme, host and port), so that what one does to its receiver (a pause, an open
/// circuit) is not mistaken for what another does.
final class HostileReceivers: Sendable {
    private let receivers: [String: HostileReceiver]

    init(_ scripts: [String: HostileReceiver.Behaviour]) throws {
        var receivers: [String: HostileReceiver] = [:]
        for (path, behaviour) in scripts { receivers[path] = try HostileReceiver([path: behaviour]) }
        self.receivers = receivers
    }

    func url(_ path: String) -> String { receivers[path]?.url(path) ?? "http://127.0.0.1:1/\(path)" }

    func count(_ path: String) -> Int { receivers[path]?.count(path) ?? 0 }

    func stop() {
        for receiver in receivers.values { receiver.stop() }
    }
}
