import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// A small real HTTP server that plays the receiver: it records every POST to
/// `/hook/<name>` and answers 200, or the statuses scripted for that name, in order.
final class Receiver: Sendable {
    struct Request: Sendable {
        let path: String
        let headers: [String: String]
        let body: String
        let arrived: Date

        func header(_ name: String) -> String? { headers[name.lowercased()] }
    }

    /// What the routes and the tests share.
    final class State: Sendable {
        let requests = Mutex<[Request]>([])
        let scripts = Mutex<[String: [Int]]>([:])
        let port = Mutex<Int?>(nil)
        let delays = Mutex<[String: Double]>([:])
        /// A `Retry-After` value sent with every answer that is not a 2xx, by name.
        let retryAfter = Mutex<[String: String]>([:])
        /// Requests being answered now, and the most at once, by name.
        let concurrency = Mutex<(now: [String: Int], most: [String: Int])>(([:], [:]))
        /// Occurrences (distinct Idempotency-Keys) being answered now, and the most at once, by
        /// name: a worker's retry of a POST it gave up on is the same occurrence, not another.
        let occurrences = Mutex<(now: [String: [String: Int]], most: [String: Int])>(([:], [:]))

        func record(_ request: Request, name: String) -> Int {
            requests.withLock { $0.append(request) }
            return scripts.withLock { scripts in
                guard var statuses = scripts[name], !statuses.isEmpty else { return 200 }
                let status = statuses.removeFirst()
                scripts[name] = statuses
                return status
            }
        }
    }

    let state = State()
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    /// Starts listening on `host` (a loopback address) on `port` (0: a free one).
    static func start(host: String = "127.0.0.1", port: Int = 0) async throws -> Receiver {
        let receiver = Receiver(host: host, port: port)
        for _ in 0..<500 {
            if receiver.state.port.withLock({ $0 }) != nil { return receiver }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw ReceiverError("the receiver did not start")
    }

    let host: String

    private init(host: String, port: Int) {
        self.host = host
        let state = state
        let router = Router()
        // `/hook/<name>` and `/hook/<name>/<sub>` (recorded as name "<name>/<sub>").
        let handler: @Sendable (Hummingbird.Request, BasicRequestContext) async throws -> Response = { request, context in
            let body = try await request.body.collect(upTo: 10_000_000)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let name = [context.parameters.get("name"), context.parameters.get("sub")].compactMap { $0 }.joined(separator: "/")
            // Recorded on arrival, answered after the delay (if any).
            let status = state.record(
                Request(path: "/hook/\(name)", headers: headers, body: String(buffer: body), arrived: Date()), name: name)
            state.concurrency.withLock { counts in
                counts.now[name, default: 0] += 1
                counts.most[name] = max(counts.most[name] ?? 0, counts.now[name] ?? 0)
            }
            defer { state.concurrency.withLock { $0.now[name, default: 1] -= 1 } }
            let key = headers["idempotency-key"] ?? ""
            state.occurrences.withLock { counts in
                counts.now[name, default: [:]][key, default: 0] += 1
                counts.most[name] = max(counts.most[name] ?? 0, counts.now[name]?.count ?? 0)
            }
            defer {
                state.occurrences.withLock { counts in
                    counts.now[name, default: [:]][key, default: 1] -= 1
                    if counts.now[name]?[key] == 0 { counts.now[name]?[key] = nil }
                }
            }
            if let delay = state.delays.withLock({ $0[name] }) { try await Task.sleep(for: .seconds(delay)) }
            var answer = Response(status: .init(code: status))
            if !(200..<300).contains(status), let retryAfter = state.retryAfter.withLock({ $0[name] }) {
                answer.headers[.retryAfter] = retryAfter
            }
            return answer
        }
        router.post("hook/:name", use: handler)
        router.post("hook/:name/:sub", use: handler)
        var logger = Logger(label: "receiver")
        // Many receivers of slow answers at once.
        logger.logLevel = .warning
        let app = Application(
            router: router, configuration: .init(address: .hostname(host, port: port)),
            onServerRunning: { channel in state.port.withLock { $0 = channel.localAddress?.port } },
            logger: logger)
        let group = ServiceGroup(services: [app], gracefulShutdownSignals: [], logger: logger)
        self.group = group
        task = Task { try await group.run() }
    }

    func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }

    var port: Int { state.port.withLock { $0 ?? 0 } }

    func url(_ name: String) -> String { "http://\(host):\(port)/hook/\(name)" }

    /// The statuses to answer `name` with, in order; after them, 200.
    func script(_ name: String, _ statuses: [Int]) {
        state.scripts.withLock { $0[name] = statuses }
    }

    /// Answers `name` only after `seconds`.
    func delay(_ name: String, seconds: Double) {
        state.delays.withLock { $0[name] = seconds }
    }

    /// Sends `Retry-After: value` with `name`'s answers that are not a 2xx.
    func retryAfter(_ name: String, _ value: String) {
        state.retryAfter.withLock { $0[name] = value }
    }

    /// The most requests to `name` answered at once.
    func mostAtOnce(_ name: String) -> Int {
        state.concurrency.withLock { $0.most[name] ?? 0 }
    }

    /// The most occurrences of `name` (distinct Idempotency-Keys) answered at once.
    func mostOccurrencesAtOnce(_ name: String) -> Int {
        state.occurrences.withLock { $0.most[name] ?? 0 }
    }

    /// How many times each Idempotency-Key arrived at `name`.
    func keys(_ name: String) -> [String: Int] {
        received(name).reduce(into: [:]) { counts, request in counts[request.header("Idempotency-Key") ?? "", default: 0] += 1 }
    }

    func received(_ name: String) -> [Request] {
        state.requests.withLock { $0.filter { $0.path == "/hook/\(name)" } }
    }

    /// Waits until `name` received `count` requests (or the time is up) and returns them.
    func waitFor(_ name: String, count: Int, timeout: Double) async throws -> [Request] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let got = received(name)
            if got.count >= count { return got }
            try await Task.sleep(for: .milliseconds(20))
        }
        return received(name)
    }
}

struct ReceiverError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
