internal import CRabbitMQ
import Foundation
import Synchronization

/// One librabbitmq connection (`amqp_connection_state_t`) and its channels.
///
/// `@unchecked Sendable` is safe because the connection has exactly one owner at a time:
/// an `AMQPPublisher`'s serial queue, or a consumer's dedicated thread. librabbitmq is not
/// thread-safe, and every method here is a blocking call meant for that owner; none may
/// be called from Swift's cooperative pool or an event loop.
final class AMQPConnection: @unchecked Sendable {
    private let state: amqp_connection_state_t
    private var open: Bool
    /// The next publish sequence number of each channel in confirm mode.
    private var nextPublishTag: [UInt16: UInt64] = [:]

    /// Connects and logs in to the first node of the URL that answers. `heartbeat` is in
    /// seconds (0 for none); `timeout` bounds the connect to each node.
    public init(url: String, heartbeat: Int = 30, timeout: Double = 5) throws {
        let endpoint = try AMQPEndpoint(url: url)
        var failures: [String] = []
        var connected: (amqp_connection_state_t, AMQPEndpoint.Node)?
        // The node that answered last time first: after a failover every reconnect (and
        // every short session) would otherwise wait on the lost node before moving on.
        for node in endpoint.ordered(preferring: Self.lastAnswered.withLock { $0[endpoint.nodes] }) {
            do {
                connected = (try Self.logIn(to: node, endpoint: endpoint, heartbeat: heartbeat, timeout: timeout), node)
                Self.lastAnswered.withLock { $0[endpoint.nodes] = node }
                break
            } catch let error as AMQPError {
                // Refused credentials or virtual host are the same on every node.
                if error.kind != .connection { throw error }
                failures.append(error.message)
            }
        }
        guard let (state, node) = connected else {
            throw AMQPError(kind: .connection, message: failures.joined(separator: "; "))
        }
        self.state = state
        self.node = node
        open = true
    }

    /// The node this connection went to.
    let node: AMQPEndpoint.Node

    /// For each list of nodes, the one that answered last, in this process.
    private static let lastAnswered = Mutex<[[AMQPEndpoint.Node]: AMQPEndpoint.Node]>([:])

    /// A logged-in connection state, or an error (the state destroyed).
    private static func logIn(
        to node: AMQPEndpoint.Node, endpoint: AMQPEndpoint, heartbeat: Int, timeout: Double
    ) throws -> amqp_connection_state_t {
        guard let state = amqp_new_connection() else {
            throw AMQPError(kind: .connection, message: "librabbitmq could not allocate a connection")
        }
        let socket: OpaquePointer
        do {
            socket = try Self.socket(state, tls: endpoint.tls)
        } catch {
            amqp_destroy_connection(state)
            throw error
        }
        var connectTimeout = Self.timeval(seconds: timeout)
        let status = amqp_socket_open_noblock(socket, node.host, Int32(node.port), &connectTimeout)
        guard status == AMQP_STATUS_OK.rawValue else {
            amqp_destroy_connection(state)
            throw AMQPError(
                kind: .connection, code: Int(status), message: "cannot connect to \(node): \(String(cString: amqp_error_string2(status)))")
        }
        var rpcTimeout = Self.timeval(seconds: max(timeout, 10))
        amqp_set_rpc_timeout(state, &rpcTimeout)
        let reply = shim_login(state, endpoint.virtualHost, Int32(heartbeat), endpoint.user, endpoint.password)
        if let error = Self.error(from: reply, doing: "log in as \(endpoint.user) at \(node)") {
            amqp_destroy_connection(state)
            throw error
        }
        return state
    }

    /// A plain TCP socket, or a TLS one that verifies the broker's certificate and host name
    /// against the CA file (the system's bundle by default), with the client certificate if
    /// one is given. A file that cannot be read is a usage error, the same on every node.
    private static func socket(_ state: amqp_connection_state_t, tls: AMQPEndpoint.TLS?) throws -> OpaquePointer {
        guard let tls else {
            guard let socket = amqp_tcp_socket_new(state) else {
                throw AMQPError(kind: .connection, message: "librabbitmq could not create a socket")
            }
            return socket
        }
        guard let socket = amqp_ssl_socket_new(state) else {
            throw AMQPError(kind: .connection, message: "librabbitmq could not create a TLS socket")
        }
        amqp_ssl_socket_set_verify_peer(socket, tls.verify ? 1 : 0)
        amqp_ssl_socket_set_verify_hostname(socket, tls.verify ? 1 : 0)
        _ = amqp_ssl_socket_set_ssl_versions(socket, AMQP_TLSv1_2, AMQP_TLSvLATEST)
        let caFile = tls.caFile ?? AMQPEndpoint.TLS.systemCAFile
        if tls.verify || tls.caFile != nil {
            let status = amqp_ssl_socket_set_cacert(socket, caFile)
            guard status == AMQP_STATUS_OK.rawValue else {
                throw AMQPError(
                    kind: .usage, code: Int(status),
                    message: "cannot read the broker CA file \(caFile): \(String(cString: amqp_error_string2(status)))")
            }
        }
        if let certificate = tls.certificateFile, let key = tls.keyFile {
            let status = amqp_ssl_socket_set_key(socket, certificate, key)
            guard status == AMQP_STATUS_OK.rawValue else {
                throw AMQPError(
                    kind: .usage, code: Int(status),
                    message:
                        "cannot read the client certificate \(certificate) or key \(key): \(String(cString: amqp_error_string2(status)))")
            }
        }
        return socket
    }

    deinit {
        if open { _ = amqp_connection_close(state, AMQP_REPLY_SUCCESS) }
        amqp_destroy_connection(state)
    }

    /// Closes the connection politely (also done on deinit).
    public func close() {
        guard open else { return }
        open = false
        _ = amqp_connection_close(state, AMQP_REPLY_SUCCESS)
    }

    /// The socket, for polling alongside other descriptors.
    public var socket: Int32 { amqp_get_sockfd(state) }

    /// True when frames are already read and waiting, so polling the socket would miss them.
    public var hasBufferedFrames: Bool {
        amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0
    }

    public func openChannel(_ channel: UInt16) throws {
        _ = amqp_channel_open(state, channel)
        try check("open channel \(channel)")
    }

    /// Answers the broker's close of `channel` and opens it again.
    private func reopen(_ channel: UInt16) throws {
        var closeOK = amqp_channel_close_ok_t(dummy: 0)
        let status = amqp_send_method(state, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &closeOK)
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(
                kind: .connection, code: Int(status), message: "channel close-ok: \(String(cString: amqp_error_string2(status)))")
        }
        try openChannel(channel)
    }

    /// Reads what the broker sent while the connection was idle, and sends a heartbeat if
    /// one is due: a publisher calls it between publishes so that its heartbeats keep
    /// flowing and a silent broker is noticed (`AMQPError` of kind `.connection`).
    public func serviceIdle() throws {
        while true {
            var frame = amqp_frame_t()
            var none = Self.timeval(seconds: 0)
            let status = amqp_simple_wait_frame_noblock(state, &frame, &none)
            if status == AMQP_STATUS_TIMEOUT.rawValue { return }
            guard status == AMQP_STATUS_OK.rawValue else {
                throw AMQPError(kind: .connection, code: Int(status), message: String(cString: amqp_error_string2(status)))
            }
            if frame.frame_type == AMQP_FRAME_METHOD,
                frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD || frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD
            {
                throw closeError(frame, doing: "idle")
            }
        }
    }

    /// Connects, opens `channel` and declares `topology`. Web, beat and workers declare the
    /// same queues when they start together, and RabbitMQ answers a quorum queue declared
    /// by two connections at once with INTERNAL_ERROR (541), closing the connection: that
    /// is tried again on a new connection for up to 10 s, so a fresh broker costs no
    /// reconnect backoff.
    public static func openDeclaring(
        url: String, heartbeat: Int, channel: UInt16, topology: AMQPTopology?
    ) throws -> AMQPConnection {
        let deadline = Date().addingTimeInterval(10)
        while true {
            let connection = try AMQPConnection(url: url, heartbeat: heartbeat)
            do {
                try connection.openChannel(channel)
                if let topology { try connection.declare(topology, channel: channel) }
                return connection
            } catch let error as AMQPError where error.kind == .broker && error.code == 541 && Date() < deadline {
                connection.close()
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
    }

    /// Declares every exchange, queue and binding; declaring what exists unchanged is a no-op.
    ///
    /// A queue that exists with other arguments (declared by an earlier version, without an
    /// argument added since) refuses the declaration (406): it is then kept as it is, rather
    /// than stopping the program.
    public func declare(_ topology: AMQPTopology, channel: UInt16) throws {
        for exchange in topology.exchanges {
            _ = shim_exchange_declare(state, channel, exchange.name, exchange.type, 1)
            try check("declare exchange \(exchange.name)")
        }
        for queue in topology.queues {
            do {
                _ = try declareQueue(queue.name, arguments: queue.arguments, channel: channel)
            } catch let error as AMQPError where error.kind == .broker && error.code == 406 {
                // The broker closed the channel over the different arguments: open it again
                // and check only that the queue is there.
                try reopen(channel)
                _ = try declareQueue(queue.name, passive: true, channel: channel)
            }
        }
        for binding in topology.bindings {
            _ = shim_queue_bind(state, channel, binding.queue, binding.exchange, binding.routingKey)
            try check("bind \(binding.queue) to \(binding.exchange)")
        }
    }

    /// Declares a durable queue (or only checks it when `passive`) and returns its counts.
    public func declareQueue(
        _ name: String, arguments: [String: AMQPValue] = [:], passive: Bool = false, channel: UInt16
    ) throws -> AMQPQueueCounts {
        var messages: UInt32 = 0
        var consumers: UInt32 = 0
        try withFields(arguments) { fields, count in
            _ = shim_queue_declare(state, channel, name, passive ? 1 : 0, 1, fields, count, &messages, &consumers)
        }
        try check("declare queue \(name)")
        return AMQPQueueCounts(messages: Int(messages), consumers: Int(consumers))
    }

    /// Puts the channel in confirm mode: the broker acknowledges every publish.
    public func enableConfirms(channel: UInt16) throws {
        _ = amqp_confirm_select(state, channel)
        try check("enable publisher confirms")
        nextPublishTag[channel] = 1
    }

    /// Publishes and returns the message's sequence number on a confirm channel.
    @discardableResult
    public func publish(_ message: AMQPOutgoingMessage, mandatory: Bool = true, channel: UInt16) throws -> UInt64 {
        let status: Int32 = try withFields(message.headers) { fields, count in
            message.body.withUnsafeBytes { body in
                shim_publish(
                    state, channel, message.exchange, message.routingKey, mandatory ? 1 : 0, body.baseAddress,
                    body.count, message.messageID, message.expirationMilliseconds.map { String($0) }, fields, count)
            }
        }
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(kind: .connection, code: Int(status), message: "publish failed: \(String(cString: amqp_error_string2(status)))")
        }
        let tag = nextPublishTag[channel] ?? 0
        nextPublishTag[channel] = tag + 1
        return tag
    }

    /// Waits until the broker has confirmed every publish up to `tag` on `channel`.
    /// Throws `.rejected` naming what was nacked or returned unroutable (mandatory), and
    /// `.timeout` when the confirms do not arrive within `timeout` seconds.
    public func waitForConfirms(upTo tag: UInt64, channel: UInt16, timeout: Double = 30) throws {
        let deadline = Date().addingTimeInterval(timeout)
        var confirmed: UInt64 = 0
        var problems: [String] = []
        while confirmed < tag {
            var frame = amqp_frame_t()
            var wait = Self.timeval(seconds: max(0, deadline.timeIntervalSinceNow))
            let status = amqp_simple_wait_frame_noblock(state, &frame, &wait)
            if status == AMQP_STATUS_TIMEOUT.rawValue {
                throw AMQPError(kind: .timeout, message: "no publisher confirm within \(Int(timeout)) s")
            }
            guard status == AMQP_STATUS_OK.rawValue else {
                throw AMQPError(kind: .connection, code: Int(status), message: String(cString: amqp_error_string2(status)))
            }
            guard frame.frame_type == AMQP_FRAME_METHOD else { continue }
            switch frame.payload.method.id {
            case AMQP_BASIC_ACK_METHOD:
                let ack = frame.payload.method.decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
                confirmed = max(confirmed, ack.delivery_tag)
            case AMQP_BASIC_NACK_METHOD:
                let nack = frame.payload.method.decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
                confirmed = max(confirmed, nack.delivery_tag)
                problems.append("the broker refused message \(nack.delivery_tag)")
            case AMQP_BASIC_RETURN_METHOD:
                let returned = frame.payload.method.decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
                problems.append(
                    "unroutable: exchange \(Self.string(returned.exchange)) routing key \(Self.string(returned.routing_key)) (\(Self.string(returned.reply_text)))"
                )
                var message = amqp_message_t()
                let reply = amqp_read_message(state, frame.channel, &message, 0)
                if reply.reply_type == AMQP_RESPONSE_NORMAL { amqp_destroy_message(&message) }
            case AMQP_CHANNEL_CLOSE_METHOD, AMQP_CONNECTION_CLOSE_METHOD:
                throw closeError(frame, doing: "publish")
            default:
                continue
            }
        }
        if !problems.isEmpty {
            throw AMQPError(kind: .rejected, message: problems.joined(separator: "; "))
        }
    }

    /// Starts consuming `queue` with at most `prefetch` deliveries unacknowledged (RabbitMQ
    /// counts them per consumer: another queue consumed on the channel has a window of its own).
    public func consume(queue: String, prefetch: Int, channel: UInt16) throws {
        _ = amqp_basic_qos(state, channel, 0, UInt16(clamping: prefetch), 0)
        try check("set prefetch")
        _ = shim_basic_consume(state, channel, queue)
        try check("consume \(queue)")
    }

    /// The next delivery, or nil when none arrived within `timeout` seconds.
    public func nextDelivery(timeout: Double) throws -> AMQPDelivery? {
        amqp_maybe_release_buffers(state)
        var envelope = amqp_envelope_t()
        var wait = Self.timeval(seconds: timeout)
        let reply = amqp_consume_message(state, &envelope, &wait, 0)
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            defer { amqp_destroy_envelope(&envelope) }
            return Self.delivery(envelope)
        case AMQP_RESPONSE_LIBRARY_EXCEPTION where reply.library_error == AMQP_STATUS_TIMEOUT.rawValue:
            return nil
        case AMQP_RESPONSE_LIBRARY_EXCEPTION where reply.library_error == AMQP_STATUS_UNEXPECTED_STATE.rawValue:
            // A frame other than a delivery: read it; a close is an error, the rest is ignored.
            var frame = amqp_frame_t()
            let status = amqp_simple_wait_frame(state, &frame)
            guard status == AMQP_STATUS_OK.rawValue else {
                throw AMQPError(kind: .connection, code: Int(status), message: String(cString: amqp_error_string2(status)))
            }
            if frame.frame_type == AMQP_FRAME_METHOD,
                frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD || frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD
            {
                throw closeError(frame, doing: "consume")
            }
            if frame.frame_type == AMQP_FRAME_METHOD, frame.payload.method.id == AMQP_BASIC_CANCEL_METHOD {
                // The broker ended the consumer (its queue moved, was deleted, or a cluster
                // node went away): nothing more would arrive on it. The owner connects again.
                throw AMQPError(kind: .broker, message: "consume: the broker cancelled the consumer")
            }
            return nil
        default:
            throw Self.error(from: reply, doing: "consume") ?? AMQPError(kind: .connection, message: "consume failed")
        }
    }

    /// Fetches one message with basic.get (for browsing a queue), or nil when it is empty.
    public func get(queue: String, channel: UInt16) throws -> AMQPDelivery? {
        amqp_maybe_release_buffers(state)
        // amqp_cstring_bytes keeps the pointer: the C string must live through the call.
        let reply = queue.withCString { amqp_basic_get(state, channel, amqp_cstring_bytes($0), 0) }
        if let error = Self.error(from: reply, doing: "get from \(queue)") { throw error }
        guard reply.reply.id == AMQP_BASIC_GET_OK_METHOD else { return nil }
        let ok = reply.reply.decoded.assumingMemoryBound(to: amqp_basic_get_ok_t.self).pointee
        var message = amqp_message_t()
        let read = amqp_read_message(state, channel, &message, 0)
        if let error = Self.error(from: read, doing: "read from \(queue)") { throw error }
        defer { amqp_destroy_message(&message) }
        return AMQPDelivery(
            deliveryTag: ok.delivery_tag, exchange: Self.string(ok.exchange), routingKey: Self.string(ok.routing_key),
            redelivered: ok.redelivered != 0, body: Self.bytes(message.body), messageID: Self.messageID(message.properties),
            headers: Self.headers(message.properties))
    }

    /// Acknowledges one delivery or, with `multiple`, every unacknowledged delivery of the
    /// channel up to and including `deliveryTag`.
    public func ack(_ deliveryTag: UInt64, multiple: Bool = false, channel: UInt16) throws {
        let status = amqp_basic_ack(state, channel, deliveryTag, multiple ? 1 : 0)
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(kind: .connection, code: Int(status), message: "ack failed: \(String(cString: amqp_error_string2(status)))")
        }
    }

    /// Hands a delivery back to the queue (`requeue`) or drops it to the dead-letter exchange.
    public func nack(_ deliveryTag: UInt64, requeue: Bool, channel: UInt16) throws {
        let status = amqp_basic_nack(state, channel, deliveryTag, 0, requeue ? 1 : 0)
        guard status == AMQP_STATUS_OK.rawValue else {
            throw AMQPError(kind: .connection, code: Int(status), message: "nack failed: \(String(cString: amqp_error_string2(status)))")
        }
    }

    // MARK: C helpers

    private func check(_ doing: String) throws {
        if let error = Self.error(from: amqp_get_rpc_reply(state), doing: doing) { throw error }
    }

    private func closeError(_ frame: amqp_frame_t, doing: String) -> AMQPError {
        if frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD {
            let close = frame.payload.method.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            return AMQPError(
                kind: .broker, code: Int(close.reply_code), message: "channel closed during \(doing): \(Self.string(close.reply_text))")
        }
        let close = frame.payload.method.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
        return AMQPError(
            kind: .broker, code: Int(close.reply_code), message: "connection closed during \(doing): \(Self.string(close.reply_text))")
    }

    static func error(from reply: amqp_rpc_reply_t, doing: String) -> AMQPError? {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL:
            return nil
        case AMQP_RESPONSE_NONE:
            return AMQPError(kind: .connection, message: "\(doing): no reply from the broker")
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return AMQPError(
                kind: .connection, code: Int(reply.library_error),
                message: "\(doing): \(String(cString: amqp_error_string2(reply.library_error)))")
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            switch reply.reply.id {
            case AMQP_CONNECTION_CLOSE_METHOD:
                let close = reply.reply.decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                return AMQPError(kind: .broker, code: Int(close.reply_code), message: "\(doing): \(string(close.reply_text))")
            case AMQP_CHANNEL_CLOSE_METHOD:
                let close = reply.reply.decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                return AMQPError(kind: .broker, code: Int(close.reply_code), message: "\(doing): \(string(close.reply_text))")
            default:
                return AMQPError(kind: .broker, message: "\(doing): unexpected broker method \(reply.reply.id)")
            }
        default:
            return AMQPError(kind: .connection, message: "\(doing): unknown reply")
        }
    }

    static func timeval(seconds: Double) -> timeval {
        let whole = Int(seconds)
        return Glibc.timeval(tv_sec: whole, tv_usec: Int(((seconds - Double(whole)) * 1_000_000).rounded()))
    }

    static func string(_ bytes: amqp_bytes_t) -> String {
        guard bytes.len > 0, let pointer = bytes.bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: bytes.len), as: UTF8.self)
    }

    static func bytes(_ bytes: amqp_bytes_t) -> [UInt8] {
        guard bytes.len > 0, let pointer = bytes.bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: bytes.len))
    }

    static func messageID(_ properties: amqp_basic_properties_t) -> String? {
        properties._flags & UInt32(AMQP_BASIC_MESSAGE_ID_FLAG) != 0 ? string(properties.message_id) : nil
    }

    static func headers(_ properties: amqp_basic_properties_t) -> [String: AMQPValue] {
        guard properties._flags & UInt32(AMQP_BASIC_HEADERS_FLAG) != 0, let entries = properties.headers.entries else { return [:] }
        var headers: [String: AMQPValue] = [:]
        for index in 0..<Int(properties.headers.num_entries) {
            let entry = entries[index]
            let key = string(entry.key)
            switch Int(entry.value.kind) {
            case Int(UInt8(ascii: "S")), Int(UInt8(ascii: "x")): headers[key] = .string(string(entry.value.value.bytes))
            case Int(UInt8(ascii: "l")): headers[key] = .int(entry.value.value.i64)
            case Int(UInt8(ascii: "L")): headers[key] = .int(Int64(clamping: entry.value.value.u64))
            case Int(UInt8(ascii: "I")): headers[key] = .int(Int64(entry.value.value.i32))
            case Int(UInt8(ascii: "i")): headers[key] = .int(Int64(entry.value.value.u32))
            case Int(UInt8(ascii: "s")): headers[key] = .int(Int64(entry.value.value.i16))
            case Int(UInt8(ascii: "u")): headers[key] = .int(Int64(entry.value.value.u16))
            case Int(UInt8(ascii: "b")): headers[key] = .int(Int64(entry.value.value.i8))
            case Int(UInt8(ascii: "B")): headers[key] = .int(Int64(entry.value.value.u8))
            default: continue
            }
        }
        return headers
    }

    static func delivery(_ envelope: amqp_envelope_t) -> AMQPDelivery {
        AMQPDelivery(
            deliveryTag: envelope.delivery_tag, exchange: string(envelope.exchange), routingKey: string(envelope.routing_key),
            redelivered: envelope.redelivered != 0, body: bytes(envelope.message.body),
            messageID: messageID(envelope.message.properties), headers: headers(envelope.message.properties))
    }

    /// Calls `body` with a C array of fields whose strings live for the call.
    private func withFields<T>(_ values: [String: AMQPValue], _ body: (UnsafePointer<shim_field>?, Int32) throws -> T) throws -> T {
        var strings: [UnsafeMutablePointer<CChar>] = []
        defer { strings.forEach { free($0) } }
        var fields: [shim_field] = []
        for (key, value) in values.sorted(by: { $0.key < $1.key }) {
            // strdup fails only when memory is exhausted, where Swift itself would trap anyway.
            let keyPointer = strdup(key)!
            strings.append(keyPointer)
            switch value {
            case .string(let text):
                let valuePointer = strdup(text)!
                strings.append(valuePointer)
                fields.append(shim_field(key: keyPointer, is_string: 1, string: valuePointer, number: 0))
            case .int(let number):
                fields.append(shim_field(key: keyPointer, is_string: 0, string: nil, number: number))
            }
        }
        return try fields.withUnsafeBufferPointer { try body($0.baseAddress, Int32($0.count)) }
    }
}
