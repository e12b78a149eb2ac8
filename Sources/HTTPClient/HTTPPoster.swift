import Foundation
import Synchronization

/// Many POSTs in flight at once on threads this box owns (libcurl's multi interface:
/// connections kept alive and reused per host). Callers never block: `post` hands POSTs
/// over and returns, and outcomes come back through `onOutcomes`, in batches.
///
/// It sets no limit of its own on connections per host: a POST handed over is sent at
/// once, so its timeout never runs while it waits for a connection. Limiting what is in
/// flight per receiver is the caller's business.
///
/// With `threads` above one, each thread has a multi handle (and its own kept-alive
/// connections) and takes the POSTs whose id falls to it (`id % threads`): sending a request
/// on loopback or a fast network costs the sender the receiving side's kernel work too, and
/// one thread doing every send held a burst to what one core could send.
public final class HTTPPoster: Sendable {
    private let lanes: [Lane]

    /// `maximumResponseBytes`: bytes of an answer's body read at most (the status counts).
    /// `egress` judges every address a guarded POST is about to connect to (after DNS, so a
    /// name that resolves somewhere refused is refused): a reason refuses it, and the POST
    /// ends with `.egressDenied` without a connection. `threads`: 1 to 64. Throws `CurlError`
    /// when libcurl cannot make a thread's multi handle.
    public init(
        maximumResponseBytes: Int, egress: (@Sendable ([UInt8]) -> String?)? = nil, threads: Int = 1,
        onOutcomes: @escaping @Sendable ([HTTPOutcome]) -> Void
    ) throws {
        lanes = try (0..<min(max(threads, 1), 64)).map { index in
            Lane(
                multi: try CurlMulti(maxConnectionsPerHost: 0, maximumResponseBytes: maximumResponseBytes, egress: egress),
                name: index == 0 ? "http-poster" : "http-poster-\(index)", onOutcomes: onOutcomes)
        }
    }

    /// Starts the box's threads.
    public func start() {
        for lane in lanes { lane.start() }
    }

    private func lane(of id: UInt64) -> Int { Int(id % UInt64(lanes.count)) }

    /// Hands POSTs over (one wakeup for each thread that gets some) and returns those
    /// refused at once, sending nothing, because their URL or a header holds a character that
    /// must not be sent. A failure to set one up comes back as an outcome.
    public func post(_ posts: [HTTPPost]) -> [(HTTPPost, HTTPPostError)] {
        var refused: [(HTTPPost, HTTPPostError)] = []
        var valid = [[HTTPPost]](repeating: [], count: lanes.count)
        for post in posts {
            do {
                if !post.isValidated { try post.validate() }
                valid[lane(of: post.id)].append(post)
            } catch {
                refused.append((post, error))
            }
        }
        for (index, posts) in valid.enumerated() where !posts.isEmpty { lanes[index].post(posts) }
        return refused
    }

    /// Stops these POSTs without an outcome (if they have not finished yet).
    public func cancel(_ ids: [UInt64]) {
        guard !ids.isEmpty else { return }
        var byLane = [[UInt64]](repeating: [], count: lanes.count)
        for id in ids { byLane[lane(of: id)].append(id) }
        for (index, ids) in byLane.enumerated() where !ids.isEmpty { lanes[index].cancel(ids) }
    }

    /// Stops every POST in flight and ends the threads; returns once they have ended.
    public func close() async {
        for lane in lanes { await lane.close() }
    }
}

/// One thread of an `HTTPPoster` and its multi handle.
///
/// `@unchecked Sendable` is safe because the multi handle is touched only on the lane's
/// thread; what other threads hand over sits behind a mutex, and `CurlMulti.wakeup()` is
/// documented by libcurl as safe from any thread.
private final class Lane: @unchecked Sendable {
    private struct Shared {
        var starts: [HTTPPost] = []
        var cancels: [UInt64] = []
        var closing = false
        var closed = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let multi: CurlMulti
    private let name: String
    private let onOutcomes: @Sendable ([HTTPOutcome]) -> Void
    private let shared = Mutex(Shared())

    init(multi: CurlMulti, name: String, onOutcomes: @escaping @Sendable ([HTTPOutcome]) -> Void) {
        self.multi = multi
        self.name = name
        self.onOutcomes = onOutcomes
    }

    func start() {
        let thread = Thread { [self] in
            run()
            let waiters = shared.withLock { shared in
                shared.closed = true
                defer { shared.waiters.removeAll() }
                return shared.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
        thread.name = name
        thread.start()
    }

    /// Hands validated POSTs over, with one wakeup.
    func post(_ posts: [HTTPPost]) {
        shared.withLock { $0.starts += posts }
        multi.wakeup()
    }

    func cancel(_ ids: [UInt64]) {
        shared.withLock { $0.cancels += ids }
        multi.wakeup()
    }

    func close() async {
        shared.withLock { $0.closing = true }
        multi.wakeup()
        await withCheckedContinuation { continuation in
            let already = shared.withLock { shared in
                if !shared.closed { shared.waiters.append(continuation) }
                return shared.closed
            }
            if already { continuation.resume() }
        }
    }

    private func run() {
        while true {
            let (starts, cancels, closing) = shared.withLock { shared in
                defer {
                    shared.starts.removeAll()
                    shared.cancels.removeAll()
                }
                return (shared.starts, shared.cancels, shared.closing)
            }
            if closing {
                multi.cancelAll()
                return
            }
            if !cancels.isEmpty { multi.cancel(Set(cancels)) }
            var failed: [HTTPOutcome] = []
            for post in starts {
                do {
                    try multi.start(post)
                } catch {
                    failed.append(
                        HTTPOutcome(id: post.id, status: nil, failure: .other, error: "\(error)", retryAfter: nil, seconds: 0))
                }
            }
            let outcomes = failed + multi.perform()
            if !outcomes.isEmpty { onOutcomes(outcomes) }
            _ = multi.poll(extraDescriptor: nil, timeoutMilliseconds: 1000)
        }
    }
}
