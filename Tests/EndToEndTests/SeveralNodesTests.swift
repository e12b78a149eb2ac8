import Foundation
import TestSupport
import Testing

@testable import AMQP

@Suite("Broker URL with several nodes", .scratch)
struct SeveralNodesTests {
    @Test("a connection goes to the first node that answers")
    func firstThatAnswers() async throws {
        let url = try await TestBroker.freshURL()
        let live = try #require(url.range(of: "@")?.upperBound)
        // Nobody listens on port 1: the next node is the test broker.
        let cluster = String(url[..<live]) + "127.0.0.1:1," + String(url[live...])
        let connection = try AMQPConnection(url: cluster, heartbeat: 0, timeout: 2)
        defer { connection.close() }
        #expect(connection.node.port != 1)
        try connection.openChannel(1)
        #expect(try connection.declareQueue("several-nodes", channel: 1).messages == 0)
        // Only nodes that do not answer: one error naming each.
        #expect {
            try AMQPConnection(url: "amqp://guest:guest@127.0.0.1:1,127.0.0.1:2/x", heartbeat: 0, timeout: 1)
        } throws: { error in
            let message = (error as? AMQPError)?.message ?? ""
            return message.contains("127.0.0.1:1") && message.contains("127.0.0.1:2")
        }
    }
}

@Suite("A consumer the broker cancels", .scratch)
struct ConsumerCancelledTests {
    @Test("a consumer whose queue goes away is told so (an error, so that its owner consumes again), not left waiting")
    func cancelledConsumerIsAnError() async throws {
        let url = try await TestBroker.freshURL()
        let consumer = try AMQPConnection(url: url, heartbeat: 0)
        defer { consumer.close() }
        try consumer.openChannel(1)
        _ = try consumer.declareQueue("going-away", channel: 1)
        try consumer.consume(queue: "going-away", prefetch: 10, channel: 1)
        #expect(try consumer.nextDelivery(timeout: 0.2) == nil)
        _ = try TestBroker.rabbitmqctl(["delete_queue", "-p", String(url.split(separator: "/").last ?? ""), "going-away"])
        #expect(throws: AMQPError.self) {
            for _ in 0..<50 { _ = try consumer.nextDelivery(timeout: 0.1) }
        }
    }
}
