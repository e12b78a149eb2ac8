import Foundation
import Synchronization

/// Many POSTs in flight at once on a thread this box owns (libcurl's multi interface:
/// connections kept alive and reused per host). Callers never block: `start` hands a POST
/// over and returns, and outcomes come back through `onOutcomes`, in batches.
///
/// It sets no limit of its own on connections per host: a POST handed over is sent at
/// once, so its timeout never runs while it waits for a connection. Limiting what is in
/// flight per receiver is the caller's business.
///
/// `@unchecked Sendable` is safe because the multi handle is touched only on the box's
/// thread; what other threads hand over sits behind a mutex, and `CurlMulti.wakeup()` is
/// documented by libcurl as safe from any thread.
public final class HTTPPoster: @unchecked Sendable {
    private struct Shared {
        var starts: [HTTPPost] = []
        var cancels: [UInt64] = []
        var closing = false
        var closed = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let multi: CurlMulti
    private let onOutcomes: @Sendable ([HTTPOutcome]) -> Void
    private let shared = Mutex(Shared())

    /// `maximumResponseBytes`: bytes of an answer's body read at most (the status counts).
    /// `egress` judges every address a guarded POST is about to connect to (after DNS, so a
    /// name that resolves somewhere refused is refused): a reason refuses it, and the POST
    /// ends with `.egressDenied` without a connection.
    public init(
        maximumResponseBytes: Int, egress: (@Sendable ([UInt8]) -> String?)? = nil,
        onOutcomes: @escaping @Sendable ([HTTPOutcome]) -> Void
    ) {
        multi = CurlMulti(maxConnectionsPerHost: 0, maximumResponseBytes: maximumResponseBytes, egress: egress)
        self.onOutcomes = onOutcomes
    }

    /// Starts the box's thread.
    public func start() {
        let thread = Thread { [self] in
            run()
            let waiters = shared.withLock { shared in
                shared.closed = true
                defer { shared.waiters.removeAll() }
                return shared.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
        thread.name = "http-poster"
        thread.start()
    }

    /// Hands POSTs over (one wakeup for all) and returns those refused at once, sending
    /// nothing, because their URL or a header holds a character that must not be sent. A
    /// failure to set one up comes back as an outcome.
    public func post(_ posts: [HTTPPost]) -> [(HTTPPost, HTTPPostError)] {
        var refused: [(HTTPPost, HTTPPostError)] = []
        var valid: [HTTPPost] = []
        for post in posts {
            do {
                try post.validate()
                valid.append(post)
            } catch {
                refused.append((post, error))
            }
        }
        guard !valid.isEmpty else { return refused }
        shared.withLock { $0.starts += valid }
        multi.wakeup()
        return refused
    }

    /// Stops these POSTs without an outcome (if they have not finished yet).
    public func cancel(_ ids: [UInt64]) {
        guard !ids.isEmpty else { return }
        shared.withLock { $0.cancels += ids }
        multi.wakeup()
    }

    /// Stops every POST in flight and ends the thread; returns once it has ended.
    public func close() async {
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

    // MARK: The thread

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
