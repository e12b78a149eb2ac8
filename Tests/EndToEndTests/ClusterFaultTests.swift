import DeliveryQueues
import Foundation
import SchedulerCore
import TestSupport
import Testing

/// A three-node RabbitMQ cluster that `scripts/test` starts on this machine (nodes on their
/// own ports and names, no containers): the node leading `scheduler.deliveries` is killed
/// with `kill -9` in the middle of a burst and started again. One of the fault tests, so it
/// runs alone (the others restart PostgreSQL and the single broker).
extension FaultTests {
    /// `SCHEDULER_TEST_CLUSTER`: the cluster's URL (three hosts, no virtual host);
    /// `SCHEDULER_TEST_CLUSTER_NODE`: scripts/rabbit-node with the cluster's prefix;
    /// `SCHEDULER_TEST_CLUSTER_PORTS`: the nodes' AMQP ports, comma-separated.
    struct Cluster {
        let url: String
        let node: String
        let ports: [String]

        init() throws {
            let environment = ProcessInfo.processInfo.environment
            guard let url = environment["SCHEDULER_TEST_CLUSTER"], let node = environment["SCHEDULER_TEST_CLUSTER_NODE"],
                let ports = environment["SCHEDULER_TEST_CLUSTER_PORTS"]
            else {
                throw TestSetupError("SCHEDULER_TEST_CLUSTER is not set: run the tests with scripts/test, which starts the cluster")
            }
            self.url = url
            self.node = node
            self.ports = ports.split(separator: ",").map(String.init)
        }

        /// Runs scripts/rabbit-node on node `n` (1...3).
        @discardableResult
        func run(_ n: Int, _ arguments: [String]) throws -> String {
            let parts = node.split(separator: " ").map(String.init)
            return try runTool(parts[0], Array(parts.dropFirst()) + [String(n)] + arguments)
        }

        /// A new virtual host on the cluster, and the URL to it.
        func freshURL() throws -> String {
            let name = "c_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
            try run(1, ["add_vhost", name])
            try run(1, ["set_permissions", "-p", name, "guest", ".*", ".*", ".*"])
            return url + "/" + name
        }
    }

    @Test(
        "RabbitMQ cluster: kill -9 of the node leading scheduler.deliveries mid-burst, then its restart: every occurrence arrives, none under two delivery ids"
    )
    func clusterLeaderKilled() async throws {
        let cluster = try Cluster()
        let brokerURL = try cluster.freshURL()
        let vhost = String(brokerURL.split(separator: "/").last ?? "")
        try await Pipeline.run(environment: ["BROKER_URL": brokerURL, "BEAT_BATCH_SIZE": "100"]) { pipeline in
            // The queues are declared by beat and worker at start-up: which node leads them?
            var leader: Int?
            for _ in 0..<100 where leader == nil {
                let queues = try cluster.run(1, ["list_queues", "-p", vhost, "name", "leader", "members"])
                for line in queues.split(separator: "\n") {
                    let columns = line.split(separator: "\t").map(String.init)
                    guard columns.count >= 3, columns[0] == DeliveryTopology.queue else { continue }
                    #expect(
                        (1...3).allSatisfy { columns[2].contains("-\($0)@localhost") },
                        "the queue is replicated on all three nodes: \(columns[2])")
                    leader = (1...3).first { columns[1].hasSuffix("-\($0)@localhost") }
                }
                if leader == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            let killed = try #require(leader, "scheduler.deliveries has a leader")

            let count = 3000
            try await pipeline.createDue(count, name: "cluster", due: Date().addingTimeInterval(1))
            let begun = try await pipeline.receiver.waitFor("cluster", count: 200, timeout: 30)
            try #require(begun.count >= 200, "the burst began")
            try cluster.run(killed, ["kill"])
            try await Task.sleep(for: .seconds(3))
            try cluster.run(killed, ["start", cluster.ports[killed - 1]])

            let all = try await pipeline.eventually(timeout: 180) { pipeline.receiver.keys("cluster").count >= count }
            try await Task.sleep(for: .seconds(2))
            let requests = pipeline.receiver.received("cluster")
            // One delivery id per occurrence (each schedule here has one occurrence).
            var idsBySchedule: [String: Set<String>] = [:]
            for request in requests {
                idsBySchedule[request.header("X-Scheduler-Schedule-Id") ?? "", default: []].insert(request.header("Idempotency-Key") ?? "")
            }
            #expect(all, "every occurrence arrived: \(idsBySchedule.count) of \(count)")
            #expect(idsBySchedule.count == count)
            #expect(idsBySchedule.values.allSatisfy { $0.count == 1 }, "no occurrence under two delivery ids")
            let repeats = requests.count - Set(requests.map { $0.header("Idempotency-Key") ?? "" }).count
            // A repeat with the same Idempotency-Key (an ack lost with the node) is allowed: count it.
            print("cluster failover: \(requests.count) requests for \(count) occurrences, \(repeats) repeats with the same key")
            let rows = try await pipeline.pool.query("SELECT count(*) FROM deliveries").first?[0]
            #expect(rows == String(count), "one delivery record per occurrence")
            let delivered = try await pipeline.eventually(timeout: 60) { try await pipeline.states()["delivered"] == count }
            let states = try await pipeline.states()
            #expect(delivered, "\(states)")
        }
    }
}
