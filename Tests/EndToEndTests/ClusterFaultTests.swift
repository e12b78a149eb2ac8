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

    /// Which node a fault takes away: the one leading `scheduler.deliveries` (while the
    /// programs are connected to another), or the one the programs are connected to (while
    /// the leader is another).
    enum Victim: String, CaseIterable, Sendable {
        case leader, clientsNode
    }

    /// The AMQP port each of the virtual host's connections reached (its node).
    static func connectionPorts(_ cluster: Cluster, vhost: String) throws -> [String] {
        try cluster.run(1, ["list_connections", "vhost", "port"]).split(separator: "\n").compactMap { line in
            let columns = line.split(separator: "\t").map(String.init)
            return columns.count == 2 && columns[0] == vhost ? columns[1] : nil
        }
    }

    /// The node (1...3) leading `queue` in `vhost`, once it is declared.
    static func leader(_ cluster: Cluster, vhost: String, queue: String, via node: Int) throws -> Int? {
        for line in try cluster.run(node, ["list_queues", "-p", vhost, "name", "leader", "members"]).split(separator: "\n") {
            let columns = line.split(separator: "\t").map(String.init)
            guard columns.count >= 3, columns[0] == queue else { continue }
            #expect(
                (1...3).allSatisfy { columns[2].contains("-\($0)@localhost") }, "the queue is replicated on all three nodes: \(columns[2])")
            return (1...3).first { columns[1].hasSuffix("-\($0)@localhost") }
        }
        return nil
    }

    @Test(
        "RabbitMQ cluster from cluster.conf: kill -9 mid-burst of the node leading scheduler.deliveries while the programs are on another, and of the programs' node while the leader is another: none lost, repeats only of jobs in flight and at most that many, each with its key",
        arguments: Victim.allCases)
    func clusterNodeKilled(_ victim: Victim) async throws {
        let cluster = try Cluster()
        let base = try cluster.freshURL()
        let vhost = String(base.split(separator: "/").last ?? "")
        let hosts = base.dropFirst("amqp://guest:guest@".count).split(separator: "/")[0].split(separator: ",").map(String.init)
        /// The cluster's URL with node `first` listed first (the programs use the first that answers).
        let url: @Sendable (_ first: Int) -> String = { first in
            "amqp://guest:guest@"
                + ([hosts[first - 1]] + hosts.enumerated().filter { $0.offset != first - 1 }.map(\.element))
                .joined(separator: ",") + "/" + vhost
        }
        // 8 requests at once, 40 ms each: about 200 a second, so the kill finds jobs
        // recorded, jobs the worker holds and jobs still queued.
        let settings = ["BROKER_URL": url(1), "BEAT_BATCH_SIZE": "100", "WORKER_PREFETCH": "100", "RECEIVER_CONCURRENCY": "8"]
        try await Pipeline.run(environment: settings, beat: false, worker: false) { pipeline in
            pipeline.receiver.delay("cluster", seconds: 0.04)
            // The worker declares the queues; queue_leader_locator = balanced places the leader.
            let first = try pipeline.launch("worker")
            var leader: Int?
            for _ in 0..<200 where leader == nil {
                leader = try Self.leader(cluster, vhost: vhost, queue: DeliveryTopology.queue, via: 1)
                if leader == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            let leaderNode = try #require(leader, "scheduler.deliveries has a leader")
            // The programs' node: another than the leader's.
            let clients = (1...3).first { $0 != leaderNode }!
            if clients != 1 {
                let stopped = await pipeline.terminate(first)
                #expect(stopped, "the first worker stops cleanly")
                _ = try pipeline.launch("worker", extra: ["BROKER_URL": url(clients)])
            }
            _ = try pipeline.launch("beat", extra: ["BROKER_URL": url(clients)])
            let count = 3000
            try await pipeline.createDue(count, name: "cluster", due: Date().addingTimeInterval(1))
            let begun = try await pipeline.eventually(timeout: 60) { try await pipeline.states()["delivered", default: 0] >= 300 }
            try #require(begun, "the burst began")
            let ports = try Self.connectionPorts(cluster, vhost: vhost)
            #expect(
                !ports.isEmpty && ports.allSatisfy { $0 == cluster.ports[clients - 1] }, "the programs are on node \(clients): \(ports)")
            #expect(try Self.leader(cluster, vhost: vhost, queue: DeliveryTopology.queue, via: clients) == leaderNode)

            let killed = victim == .leader ? leaderNode : clients
            let instant = try await pipeline.fault(during: "cluster", count: count) { try cluster.run(killed, ["kill"]) }
            try await Task.sleep(for: .seconds(3))
            try cluster.run(killed, ["start", cluster.ports[killed - 1]])
            let (requests, repeated) = try await pipeline.expectEachOnce("cluster", count: count, after: instant)
            print(
                "cluster, \(victim.rawValue) killed (node \(killed), programs on \(clients), leader \(leaderNode)): recorded \(instant.recorded.count), in flight \(instant.inFlight.count), queued \(instant.queued) at the kill; \(requests.count) requests, \(repeated.count) repeated"
            )
        }
        try cluster.run(1, ["delete_vhost", vhost])
    }
}
