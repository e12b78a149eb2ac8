import Testing

@testable import AMQP

/// Broker URLs: one node or a cluster's several, as the programs read `BROKER_URL`.
@Suite("Broker URLs")
struct AMQPEndpointTests {
    @Test("one node: defaults for what is left out")
    func oneNode() throws {
        let endpoint = try AMQPEndpoint(url: "amqp://mq")
        #expect(endpoint.nodes == [.init(host: "mq", port: 5672)])
        #expect(endpoint.user == "guest" && endpoint.password == "guest" && endpoint.virtualHost == "/")
        let full = try AMQPEndpoint(url: "amqp://app:p%40ss%3Aword@mq.internal:5673/%2f")
        #expect(full.nodes == [.init(host: "mq.internal", port: 5673)])
        #expect(full.user == "app" && full.password == "p@ss:word" && full.virtualHost == "/")
        #expect(try AMQPEndpoint(url: "amqp://u:p@mq/tenant%20a").virtualHost == "tenant a")
    }

    @Test("a cluster: several hosts, comma-separated, tried in order")
    func severalNodes() throws {
        let endpoint = try AMQPEndpoint(url: "amqp://app:secret@node1:5672,node2,[::1]:5674,10.0.0.3:5675/prod?heartbeat=10")
        #expect(
            endpoint.nodes == [
                .init(host: "node1", port: 5672), .init(host: "node2", port: 5672), .init(host: "::1", port: 5674),
                .init(host: "10.0.0.3", port: 5675),
            ])
        #expect(endpoint.user == "app" && endpoint.password == "secret" && endpoint.virtualHost == "prod")
        #expect(endpoint.nodes[2].description == "[::1]:5674")
    }

    @Test(
        "amqps://: TLS on port 5671 by default, verified with the system's CAs unless cacertfile says which; client certificate and key together; RabbitMQ's query names"
    )
    func tls() throws {
        #expect(try AMQPEndpoint(url: "amqp://mq").tls == nil)
        let plain = try AMQPEndpoint(url: "amqps://app:secret@mq.example.org/prod")
        #expect(plain.nodes == [.init(host: "mq.example.org", port: 5671)])
        #expect(plain.tls == .init(caFile: nil, certificateFile: nil, keyFile: nil, verify: true))
        let full = try AMQPEndpoint(
            url:
                "amqps://app:secret@n1:5671,n2:5681/prod?heartbeat=10&cacertfile=/etc/ssl/mq/ca.pem&certfile=/etc/ssl/mq/client.pem&keyfile=%2Fetc%2Fssl%2Fmq%2Fclient.key#x"
        )
        #expect(full.nodes == [.init(host: "n1", port: 5671), .init(host: "n2", port: 5681)])
        #expect(full.virtualHost == "prod")
        #expect(
            full.tls
                == .init(
                    caFile: "/etc/ssl/mq/ca.pem", certificateFile: "/etc/ssl/mq/client.pem", keyFile: "/etc/ssl/mq/client.key", verify: true
                ))
        #expect(try AMQPEndpoint(url: "AMQPS://mq?verify=verify_none").tls?.verify == false)
        #expect(try AMQPEndpoint(url: "amqps://mq?verify=verify_peer").tls?.verify == true)
        for refused in [
            "amqps://mq?certfile=/c.pem", "amqps://mq?keyfile=/k.pem", "amqps://mq?verify=no", "amqps://mq?cacertfile=/a%0Ab",
            "http://mq", "amqpx://mq",
        ] {
            #expect(throws: AMQPError.self, "\(refused)") { try AMQPEndpoint(url: refused) }
        }
    }

    @Test("the node that answered last is tried first, then the others in their order")
    func preferredNodeFirst() throws {
        let endpoint = try AMQPEndpoint(url: "amqp://n1,n2,n3")
        let (n1, n2, n3) = (endpoint.nodes[0], endpoint.nodes[1], endpoint.nodes[2])
        #expect(endpoint.ordered(preferring: nil) == [n1, n2, n3])
        #expect(endpoint.ordered(preferring: n2) == [n2, n1, n3])
        #expect(endpoint.ordered(preferring: n3) == [n3, n1, n2])
        #expect(endpoint.ordered(preferring: .init(host: "elsewhere", port: 5672)) == [n1, n2, n3])
    }

    @Test(
        "a malformed URL is a usage error, never a trap",
        arguments: [
            "mq:5672", "amqps://mq:0", "redis://mq", "amqp://mq:0", "amqp://mq:65536", "amqp://mq:-1", "amqp://mq:99999999999999999999",
            "amqp://a:1,b:x/v", "amqp://a b/v", "amqp://[::1/v",
        ])
    func malformed(url: String) {
        #expect(throws: AMQPError.self) { try AMQPEndpoint(url: url) }
    }
}
