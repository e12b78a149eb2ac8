import DeliveryQueues
import Foundation
import Postgres
import SchedulerCore
import SchedulerStore
import TestSupport
import Testing

@testable import AMQP

/// `rabbitmq/definitions.json` (for operators to import) says what the programs declare.
@Suite("RabbitMQ topology")
struct TopologyTests {
    @Test(
        "definitions.json matches the topology declared with the default retry delays: each queue's type, and the rest (TTL, dead-lettering, limits) in a policy of its own"
    )
    func definitions() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("rabbitmq/definitions.json")
        let file = try JSONParser.parse(Array(try Data(contentsOf: path))).objectValue
        let topology = DeliveryTopology.make(try Configuration(environment: ["SECRET_KEY": "0123456789abcdef0123"]).retryPolicy)

        guard case .array(let exchanges)? = file?["exchanges"], case .array(let queues)? = file?["queues"],
            case .array(let bindings)? = file?["bindings"]
        else { throw TopologyError("definitions.json lacks exchanges, queues or bindings") }

        let declaredExchanges = Set(topology.exchanges.map { "\($0.name) \($0.type)" })
        let fileExchanges = Set(
            exchanges.compactMap(\.objectValue).map { "\($0["name"]?.stringValue ?? "") \($0["type"]?.stringValue ?? "")" })
        #expect(fileExchanges == declaredExchanges)

        // A policy's keys are the queue arguments' without their `x-`.
        var policies: [String: [String: AMQPValue]] = [:]
        guard case .array(let policyList)? = file?["policies"] else { throw TopologyError("definitions.json lacks policies") }
        for policy in policyList.compactMap(\.objectValue) {
            let name = policy["name"]?.stringValue ?? ""
            #expect(
                policy["pattern"]?.stringValue == "^" + name.replacingOccurrences(of: ".", with: "\\.") + "$",
                "\(name) applies to its queue alone")
            #expect(policy["apply-to"]?.stringValue == "queues")
            for (key, value) in policy["definition"]?.objectValue?.entries ?? [] {
                policies[name, default: [:]]["x-" + key] = value.integerValue.map { .int(Int64($0)) } ?? .string(value.stringValue ?? "")
            }
        }
        var fileQueues: [String: [String: AMQPValue]] = [:]
        for queue in queues.compactMap(\.objectValue) {
            let name = queue["name"]?.stringValue ?? ""
            var arguments: [String: AMQPValue] = [:]
            for (key, value) in queue["arguments"]?.objectValue?.entries ?? [] {
                arguments[key] = value.integerValue.map { .int(Int64($0)) } ?? .string(value.stringValue ?? "")
            }
            #expect(arguments == ["x-queue-type": .string("quorum")], "\(name) is declared with its type only")
            fileQueues[name] = arguments.merging(policies[name] ?? [:]) { $1 }
        }
        #expect(fileQueues == Dictionary(uniqueKeysWithValues: topology.queues.map { ($0.name, $0.arguments) }))

        let fileBindings = Set(
            bindings.compactMap(\.objectValue).map {
                "\($0["destination"]?.stringValue ?? "") <- \($0["source"]?.stringValue ?? "") \($0["routing_key"]?.stringValue ?? "")"
            })
        #expect(fileBindings == Set(topology.bindings.map { "\($0.queue) <- \($0.exchange) \($0.routingKey)" }))
    }
}

struct TopologyError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A broker that already has the topology as earlier versions declared it (the dead-letter
/// queue without a delivery limit), upgraded: the new definitions imported, the programs'
/// declarations run; nothing queued is lost, and the dead-letter queue can be walked again
/// and again without its messages counting toward a delivery limit.
@Suite("RabbitMQ topology upgraded", .scratch)
struct TopologyUpgradeTests {
    @Test(
        "an upgrade from the earlier arguments keeps every message: the new definitions' policies apply to the queues there, the programs' declarations pass, and 50 walks of the dead letters lose none"
    )
    func upgrade() async throws {
        let url = try await TestBroker.freshURL()
        let vhost = String(url.split(separator: "/").last ?? "")
        let policy = try Configuration(environment: ["SECRET_KEY": "0123456789abcdef0123"]).retryPolicy
        let current = DeliveryTopology.make(policy)
        // The earlier topology: the dead-letter queue a quorum queue with no other argument.
        let earlier = AMQPTopology(
            exchanges: current.exchanges,
            queues: current.queues.map {
                $0.name == DeliveryTopology.deadQueue
                    ? AMQPTopology.Queue(name: $0.name, arguments: ["x-queue-type": .string("quorum")]) : $0
            }, bindings: current.bindings)
        let connection = try AMQPConnection(url: url, heartbeat: 0)
        defer { connection.close() }
        try connection.openChannel(1)
        try connection.declare(earlier, channel: 1)
        try connection.enableConfirms(channel: 1)
        var last: UInt64 = 0
        for index in 0..<30 {
            last = try connection.publish(
                AMQPOutgoingMessage(
                    exchange: DeliveryTopology.deadExchange, routingKey: "schedule.x", body: Array("dead \(index)".utf8),
                    messageID: UUID().uuidString.lowercased()), channel: 1)
        }
        for index in 0..<3 {
            last = try connection.publish(
                AMQPOutgoingMessage(
                    exchange: DeliveryTopology.retryName(milliseconds: policy.delays[0]), routingKey: "schedule.y",
                    body: Array("retry \(index)".utf8), messageID: UUID().uuidString.lowercased()), channel: 1)
        }
        try connection.waitForConfirms(upTo: last, channel: 1, timeout: 10)

        // The new definitions, imported into this virtual host, as an operator would.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("rabbitmq/definitions.json"), encoding: .utf8)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("definitions-\(vhost).json")
        try text.replacingOccurrences(of: #""vhost": "/""#, with: #""vhost": "\#(vhost)""#)
            .replacingOccurrences(of: #"{"name": "/"}"#, with: #"{"name": "\#(vhost)"}"#)
            .write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        _ = try TestBroker.rabbitmqctl(["import_definitions", file.path])
        // The programs' declaration on the upgraded broker passes (a queue with other
        // arguments is kept as it is).
        try connection.declare(current, channel: 1)

        // The dead-letter queue, declared without a limit, now has its policy's.
        let applied = try TestBroker.rabbitmqctl(["list_queues", "-p", vhost, "name", "policy"])
        #expect(applied.contains("\(DeliveryTopology.deadQueue)\t\(DeliveryTopology.deadQueue)"), "\(applied)")
        let policies = try TestBroker.rabbitmqctl(["list_policies", "-p", vhost])
        let dead = policies.split(separator: "\n").first { $0.contains("\t\(DeliveryTopology.deadQueue)\t") }.map(String.init) ?? ""
        #expect(dead.contains(#""delivery-limit":\#(DeliveryLimits.deadLetterDeliveryLimit)"#), "\(dead)")
        #expect(try connection.declareQueue(DeliveryTopology.deadQueue, passive: true, channel: 1).messages == 30)

        // Each walk takes every dead letter and hands back the ones it leaves.
        let redriver = DeadLetterRedriver(
            brokerURL: url, policy: policy,
            store: DeliveryStore(pool: PostgresPool(url: "postgres://unused@127.0.0.1:1/x", size: 1, logger: TestDatabase.logger)),
            logger: TestDatabase.logger)
        for walk in 1...50 {
            // The last walk's hand-backs are back in the queue first (they are not confirmed).
            _ = try await eventually(timeout: 10) {
                try connection.declareQueue(DeliveryTopology.deadQueue, passive: true, channel: 1).messages == 30
            }
            let seen = try await redriver.browse()
            if seen.count != 30 {
                Issue.record("walk \(walk) saw \(seen.count) of 30 dead letters")
                break
            }
        }
        // (Handed back as the walk's session closes: ready again a moment later.)
        let kept = try await eventually(timeout: 10) {
            try connection.declareQueue(DeliveryTopology.deadQueue, passive: true, channel: 1).messages == 30
        }
        let left = try connection.declareQueue(DeliveryTopology.deadQueue, passive: true, channel: 1).messages
        #expect(kept, "none lost to 50 walks: \(left) of 30 left")
        // The retry queue's messages still come back to the main queue after their delay.
        let back = try await eventually(timeout: Double(policy.delays[0]) / 1000 + 10) {
            try connection.declareQueue(DeliveryTopology.queue, passive: true, channel: 1).messages == 3
        }
        #expect(back, "the retries came back after their delay")
    }

    @Test("a fresh broker: the dead-letter queue is declared with its explicit delivery limit")
    func freshDeadLetterLimit() async throws {
        let url = try await TestBroker.freshURL()
        let vhost = String(url.split(separator: "/").last ?? "")
        let connection = try AMQPConnection(url: url, heartbeat: 0)
        defer { connection.close() }
        try connection.openChannel(1)
        try connection.declare(
            DeliveryTopology.make(try Configuration(environment: ["SECRET_KEY": "0123456789abcdef0123"]).retryPolicy), channel: 1)
        let arguments = try TestBroker.rabbitmqctl(["list_queues", "-p", vhost, "name", "arguments"])
        let dead = arguments.split(separator: "\n").first { $0.hasPrefix(DeliveryTopology.deadQueue + "\t") }.map(String.init) ?? ""
        #expect(dead.contains("x-delivery-limit") && dead.contains("\(DeliveryLimits.deadLetterDeliveryLimit)"), "\(dead)")
    }
}
