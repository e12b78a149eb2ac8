import Hummingbird
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import NIOHTTPTypes

/// How long a connection may hold scheduler-web's attention without sending a request.
public struct ConnectionLimits: Sendable, Equatable {
    /// A request's headers must be complete this long after the connection opened, or after
    /// its first byte arrived on a kept-alive connection (`HTTP_HEADER_TIMEOUT`).
    public var headerTimeout: Duration
    /// A kept-alive connection with no request (and a request body with no bytes) for this
    /// long is closed (`HTTP_IDLE_TIMEOUT`).
    public var idleTimeout: Duration
    /// Connections open at once, at most (`HTTP_MAX_CONNECTIONS`): past it, new ones wait in
    /// the kernel's queue until one closes.
    public var maximumConnections: Int

    public init(headerTimeout: Duration, idleTimeout: Duration, maximumConnections: Int) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.maximumConnections = maximumConnections
    }
}

/// scheduler-web's HTTP/1.1 server: Hummingbird's, with a watch on each connection that
/// closes it when its request's headers do not arrive within the header timeout or when it
/// sits idle past the idle timeout. So a crowd of connections that send half a request line
/// and then nothing (slowloris) is closed within seconds instead of held for ever.
struct GuardedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let inner: HTTP1Channel
    let limits: ConnectionLimits

    init(responder: @escaping HTTPChannelHandler.Responder, limits: ConnectionLimits) {
        self.limits = limits
        inner = HTTP1Channel(
            responder: responder,
            configuration: .init(
                additionalChannelHandlers: [HeadWatch()], idleTimeout: .nanoseconds(limits.idleTimeout.nanoseconds)))
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            // First in the pipeline: it sees the bytes before the HTTP decoder does.
            try channel.pipeline.syncOperations.addHandler(ByteWatch(limits: limits), position: .first)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return inner.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }

    static let closedForHeaders = Counter(label: "scheduler_http_connections_closed_total", dimensions: [("reason", "header_timeout")])
    static let closedIdle = Counter(label: "scheduler_http_connections_closed_total", dimensions: [("reason", "idle_timeout")])
}

extension Duration {
    /// Whole nanoseconds (the durations here are settings of seconds: no overflow).
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with the header and idle timeouts of `limits`.
    static func guarded(_ limits: ConnectionLimits) -> HTTPServerBuilder {
        .init { responder in GuardedHTTP1Channel(responder: responder, limits: limits) }
    }
}

/// Watches a connection's bytes and its requests' heads and ends; closes it when a head is
/// late or it has been idle too long. Runs on the connection's event loop only.
final class ByteWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    enum State {
        /// Waiting for a request's head: since the connection opened, or since the first
        /// byte after the last response.
        case awaitingHead
        /// A head arrived; the request is being read or answered.
        case inRequest
        /// The last response was written; nothing has arrived since.
        case idle
    }

    let limits: ConnectionLimits
    private var state = State.awaitingHead
    private var requestsOpen = 0
    private var timer: Scheduled<Void>?
    private var context: ChannelHandlerContext?

    init(limits: ConnectionLimits) { self.limits = limits }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        arm(limits.headerTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if state == .idle {
            state = .awaitingHead
            arm(limits.headerTimeout)
        }
        context.fireChannelRead(data)
    }

    /// A request's head was decoded.
    func headArrived() {
        requestsOpen += 1
        state = .inRequest
        timer?.cancel()
        timer = nil
    }

    /// A response was written to its end.
    func responseEnded() {
        requestsOpen = max(0, requestsOpen - 1)
        guard requestsOpen == 0, state == .inRequest else { return }
        state = .idle
        arm(limits.idleTimeout)
    }

    private func arm(_ after: Duration) {
        timer?.cancel()
        guard let context else { return }
        let expected = state
        timer = context.eventLoop.assumeIsolatedUnsafeUnchecked().scheduleTask(in: .nanoseconds(after.nanoseconds)) { [self] in
            timer = nil
            guard state == expected, state != .inRequest, let context = self.context else { return }
            (state == .idle ? GuardedHTTP1Channel.closedIdle : GuardedHTTP1Channel.closedForHeaders).increment()
            context.close(promise: nil)
        }
    }
}

/// Sits after the HTTP codec and tells the connection's `ByteWatch` when a head arrives
/// and when a response ends.
final class HeadWatch: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var watch: ByteWatch?

    func handlerAdded(context: ChannelHandlerContext) {
        watch = try? context.pipeline.syncOperations.handler(type: ByteWatch.self)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        watch = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { watch?.headArrived() }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { watch?.responseEnded() }
        context.write(data, promise: promise)
    }
}
