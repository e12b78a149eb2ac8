import Foundation
import Logging
import Synchronization
import TestSupport
import Testing

@testable import AMQP

@Suite("The consumer box against RabbitMQ", .scratch, .timeLimit(.minutes(2)))
struct AMQPConsumerTests {
    @Test("acks out of order settle exactly the acked deliveries; a stray or repeated ack does not close the channel")
    func acksOutOfOrder() async throws {
        let url = try await TestBroker.freshURL()
        let queue = "acks"
        let publisher = try AMQPConnection(url: url, heartbeat: 0)
        defer { publisher.close() }
        try publisher.openChannel(1)
        _ = try publisher.declareQueue(queue, arguments: ["x-queue-type": .string("quorum")], channel: 1)
        try publisher.enableConfirms(channel: 1)
        var last: UInt64 = 0
        for index in 1...10 {
            last = try publisher.publish(AMQPOutgoingMessage(exchange: "", routingKey: queue, body: Array("\(index)".utf8)), channel: 1)
        }
        try publisher.waitForConfirms(upTo: last, channel: 1)

        let received = Mutex<[AMQPDelivery]>([])
        let lost = Mutex(0)
        let consumer = AMQPConsumer(
            settings: .init(url: url, queue: queue, prefetch: 100, heartbeat: 0, topology: nil), logger: Logger(label: "test")
        ) { event in
            switch event {
            case .deliveries(let deliveries, _): received.withLock { $0 += deliveries }
            case .lost: lost.withLock { $0 += 1 }
            case .connected: break
            }
        }
        consumer.start()
        let all = try await eventually(timeout: 10) { received.withLock { $0.count } == 10 }
        try #require(all)
        let tags = received.withLock { $0.map(\.deliveryTag) }
        #expect(tags == Array(1...10))

        // 1-3 (handed over out of order) can go in one multiple ack; 5 and 7 cannot, as 4
        // and 6 are still out. 99 is no tag of this channel and 5 comes twice: neither may
        // reach the broker, which would close the channel and hand every job out again.
        consumer.ack([3, 1, 2, 5, 7, 99, 5], generation: 1)
        let firstSettled = try await eventually(timeout: 10) { try TestBroker.counts(of: queue, url: url).unacked == 5 }
        #expect(firstSettled, "counts: \(String(describing: try? TestBroker.counts(of: queue, url: url)))")
        // 4 and 6 now make 1-7 a run: one multiple ack must not reach 8, 9 or 10.
        consumer.ack([6, 4], generation: 1)
        let secondSettled = try await eventually(timeout: 10) { try TestBroker.counts(of: queue, url: url).unacked == 3 }
        #expect(secondSettled, "counts: \(String(describing: try? TestBroker.counts(of: queue, url: url)))")
        // A nack of 9 (back to the queue) before an ack of 10 in one hand-over.
        consumer.nack([9], requeue: true, generation: 1)
        consumer.ack([10], generation: 1)
        let redelivered = try await eventually(timeout: 10) { received.withLock { $0.count } == 11 }
        #expect(redelivered)
        #expect(received.withLock { $0.last?.body } == Array("9".utf8))
        #expect(lost.withLock { $0 } == 0)

        // What is not acked returns to the queue when the consumer closes: 8 and the second 9.
        await consumer.close()
        let returned = try await eventually(timeout: 10) { try TestBroker.counts(of: queue, url: url) == (0, 2) }
        #expect(returned, "counts: \(String(describing: try? TestBroker.counts(of: queue, url: url)))")
    }
}
