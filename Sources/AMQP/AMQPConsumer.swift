import Foundation
import Glibc
import Logging
import Synchronization

/// Consumes queues on a connection that this box owns together with its thread: the
/// thread connects (declaring the topology), reads deliveries, sends the acks and nacks it
/// is handed, keeps heartbeats flowing, and connects again after a failure. Callers never
/// block: they get events through `onEvent` and hand commands over with `ack`/`nack`.
///
/// Every connection has a generation number; deliveries carry it, and an ack or nack for an
/// older generation is dropped (its delivery tag belongs to a connection that is gone, and
/// the broker delivers that message again).
///
/// `@unchecked Sendable` is safe because the connection is touched only on the box's own
/// thread; the commands and flags that other threads hand over sit behind a mutex, and the
/// thread is woken through a pipe.
public final class AMQPConsumer: @unchecked Sendable {
    public enum Event: Sendable {
        /// A connection is consuming; deliveries of `generation` follow.
        case connected(generation: Int)
        /// What arrived since the last turn of the box's thread, in order.
        case deliveries([AMQPDelivery], generation: Int)
        /// The connection of `generation` failed: its unacknowledged deliveries return to
        /// the queue. The box connects again by itself.
        case lost(generation: Int, error: any Error)
    }

    public struct Settings: Sendable {
        public var url: String
        /// Consumed on one channel, each with a window (prefetch) of its own; delivery tags are
        /// the channel's, so they never repeat across the queues.
        public var queues: [(name: String, prefetch: Int)]
        public var heartbeat: Int
        public var topology: AMQPTopology?

        public init(url: String, queue: String, prefetch: Int, heartbeat: Int, topology: AMQPTopology?) {
            self.init(url: url, queues: [(queue, prefetch)], heartbeat: heartbeat, topology: topology)
        }

        public init(url: String, queues: [(name: String, prefetch: Int)], heartbeat: Int, topology: AMQPTopology?) {
            self.url = url
            self.queues = queues
            self.heartbeat = heartbeat
            self.topology = topology
        }
    }

    private enum Command {
        case ack(UInt64, generation: Int)
        case nack(UInt64, requeue: Bool, generation: Int)
    }

    private struct Shared {
        var commands: [Command] = []
        var paused = false
        var closing = false
        var closed = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let settings: Settings
    private let logger: Logger
    private let onEvent: @Sendable (Event) -> Void
    private let shared = Mutex(Shared())
    /// A pipe: the thread polls its read end; `wake()` writes a byte to the other.
    private let wakeDescriptor: Int32
    private let wakeWriter: Int32
    private let channel: UInt16 = 1

    // The thread's own.
    private var connection: AMQPConnection?
    private var generation = 0
    /// The delivery tags of this connection not yet acked or nacked, oldest first.
    private var unsettled: [UInt64] = []

    public init(settings: Settings, logger: Logger, onEvent: @escaping @Sendable (Event) -> Void) {
        self.settings = settings
        self.logger = logger
        self.onEvent = onEvent
        var ends: [Int32] = [-1, -1]
        if pipe(&ends) == 0 {
            for end in ends {
                _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
                _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            }
        } else {
            ends = [-1, -1]
        }
        // Without a pipe (out of descriptors) the thread still wakes every second by itself.
        wakeDescriptor = ends[0]
        wakeWriter = ends[1]
    }

    deinit {
        if wakeDescriptor >= 0 { Glibc.close(wakeDescriptor) }
        if wakeWriter >= 0 { Glibc.close(wakeWriter) }
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
        thread.name = "amqp-consumer"
        thread.start()
    }

    public func ack(_ deliveryTags: [UInt64], generation: Int) {
        hand(deliveryTags.map { .ack($0, generation: generation) })
    }

    /// Hands deliveries back to the queue (`requeue`) or to its dead-letter exchange.
    public func nack(_ deliveryTags: [UInt64], requeue: Bool, generation: Int) {
        hand(deliveryTags.map { .nack($0, requeue: requeue, generation: generation) })
    }

    /// Stops reading deliveries (those already sent by the broker stay unacknowledged until
    /// acked, nacked, or the connection closes); acks and heartbeats go on.
    public func pause() {
        shared.withLock { $0.paused = true }
        wake()
    }

    /// Sends the commands handed over so far, closes the connection (its unacknowledged
    /// deliveries return to the queue) and ends the thread; returns once it has ended.
    public func close() async {
        shared.withLock { $0.closing = true }
        wake()
        await withCheckedContinuation { continuation in
            let already = shared.withLock { shared in
                if !shared.closed { shared.waiters.append(continuation) }
                return shared.closed
            }
            if already { continuation.resume() }
        }
    }

    private func hand(_ commands: [Command]) {
        guard !commands.isEmpty else { return }
        shared.withLock { $0.commands += commands }
        wake()
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWriter, &byte, 1)  // a full pipe already wakes the thread
    }

    // MARK: The thread

    private func run() {
        // Failed connects and connections lost soon after they opened, in a row: each waits
        // twice as long before the next connect (0.25 s first, 30 s at most), so a broker
        // that accepts and then drops every connection is not hammered. A connection that
        // stayed up for `steadyAfter` seconds starts the count again.
        var failures = 0
        var connectedAt = Date.distantPast
        let steadyAfter = 30.0
        func backOff() -> Double {
            failures += 1
            return min(30.0, 0.125 * pow(2.0, Double(min(failures, 8))))
        }
        while !shared.withLock({ $0.closing }) {
            if connection == nil {
                do {
                    try connect()
                    connectedAt = Date()
                } catch {
                    let delay = backOff()
                    logger.error(
                        "cannot consume \(settings.queues.map(\.name).joined(separator: ", ")); retrying",
                        metadata: ["error": "\(error)", "retry.in.s": "\(delay)"])
                    waitForWake(upTo: delay)
                    continue
                }
            }
            do {
                try turn()
            } catch {
                let lost = generation
                connection?.close()
                connection = nil
                onEvent(.lost(generation: lost, error: error))
                if -connectedAt.timeIntervalSinceNow >= steadyAfter { failures = 0 }
                waitForWake(upTo: backOff())
            }
        }
        // Closing: the last acks and nacks, then the connection.
        if connection != nil { try? sendCommands() }
        connection?.close()
        connection = nil
    }

    private func connect() throws {
        let opened = try AMQPConnection.openDeclaring(
            url: settings.url, heartbeat: settings.heartbeat, channel: channel, topology: settings.topology)
        for queue in settings.queues { try opened.consume(queue: queue.name, prefetch: queue.prefetch, channel: channel) }
        connection = opened
        generation += 1
        unsettled = []
        // Commands for the connection that is gone can only be dropped.
        shared.withLock { $0.commands.removeAll() }
        onEvent(.connected(generation: generation))
    }

    /// One turn: send commands, read what arrived, wait for the socket or a wakeup.
    private func turn() throws {
        guard let connection else { return }
        try sendCommands()
        let paused = shared.withLock { $0.paused }
        if !paused {
            var arrived: [AMQPDelivery] = []
            while arrived.count < 1000, let delivery = try connection.nextDelivery(timeout: 0) {
                arrived.append(delivery)
            }
            if !arrived.isEmpty {
                unsettled += arrived.map(\.deliveryTag)
                onEvent(.deliveries(arrived, generation: generation))
            }
        } else {
            try connection.serviceIdle()
        }
        if connection.hasBufferedFrames && !paused { return }
        var descriptors = [
            pollfd(fd: connection.socket, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakeDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        // Wake at least every second for heartbeats (librabbitmq sends them when called).
        _ = Glibc.poll(&descriptors, 2, 1000)
        if descriptors[1].revents != 0 { drainWake() }
    }

    private func sendCommands() throws {
        guard let connection else { return }
        let commands = shared.withLock { shared in
            defer { shared.commands.removeAll() }
            return shared.commands
        }
        guard !commands.isEmpty else { return }
        let waiting = Set(unsettled)
        var acks = Set<UInt64>()
        var nacked = Set<UInt64>()
        for command in commands {
            switch command {
            // A tag of a connection that is gone, or one settled already, is dropped: the
            // broker would close the channel for it.
            case .ack(let tag, let generation) where generation == self.generation && waiting.contains(tag):
                acks.insert(tag)
            case .nack(let tag, let requeue, let generation)
            where generation == self.generation && waiting.contains(tag) && !nacked.contains(tag):
                // Nacks go first: a multiple ack below must not cover a tag meant for a nack.
                try connection.nack(tag, requeue: requeue, channel: channel)
                nacked.insert(tag)
            default:
                continue
            }
        }
        acks.subtract(nacked)
        if !nacked.isEmpty { unsettled.removeAll { nacked.contains($0) } }
        // The oldest unsettled tags, all acked now, go in one multiple ack (one frame and one
        // settle in the broker instead of one each); the rest one by one.
        var covered = 0
        while covered < unsettled.count, acks.contains(unsettled[covered]) { covered += 1 }
        if covered > 0 { try connection.ack(unsettled[covered - 1], multiple: true, channel: channel) }
        for tag in unsettled[covered...] where acks.contains(tag) {
            try connection.ack(tag, channel: channel)
        }
        unsettled.removeAll { acks.contains($0) }
    }

    /// Sleeps `seconds`, or less when the box is closed meanwhile.
    private func waitForWake(upTo seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while !shared.withLock({ $0.closing }) {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return }
            var descriptor = pollfd(fd: wakeDescriptor, events: Int16(POLLIN), revents: 0)
            _ = Glibc.poll(&descriptor, 1, Int32(left * 1000) + 1)
            drainWake()
        }
    }

    private func drainWake() {
        var bytes = [UInt8](repeating: 0, count: 256)
        while Glibc.read(wakeDescriptor, &bytes, bytes.count) > 0 {}
    }
}
