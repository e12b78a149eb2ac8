import AMQP
import DeliveryQueues
import Foundation
import SchedulerCore
import Testing

/// `rabbitmq/definitions.json` (for operators to import) says what the programs declare.
@Suite("RabbitMQ topology")
struct TopologyTests {
    @Test("definitions.json matches the topology declared with the default retry delays")
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

        var fileQueues: [String: [String: AMQPValue]] = [:]
        for queue in queues.compactMap(\.objectValue) {
            var arguments: [String: AMQPValue] = [:]
            for (key, value) in queue["arguments"]?.objectValue?.entries ?? [] {
                arguments[key] = value.integerValue.map { .int(Int64($0)) } ?? .string(value.stringValue ?? "")
            }
            fileQueues[queue["name"]?.stringValue ?? ""] = arguments
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
