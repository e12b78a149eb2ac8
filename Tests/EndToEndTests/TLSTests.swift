import DeliveryQueues
import Foundation
import Postgres
import SchedulerCore
import TestSupport
import Testing

@testable import AMQP

/// TLS to both servers, against the test servers' TLS listeners and a CA the test run made:
/// the broker and the database verified (CA and host name), refusals when they cannot be,
/// and the whole pipeline over TLS.
@Suite("TLS to RabbitMQ and PostgreSQL", .timeLimit(.minutes(3)))
struct TLSTests {
    @Test(
        "amqps://: the broker's certificate and host name verified against cacertfile; another CA, or a name the certificate lacks, refused; a client certificate shown",
        .scratch
    )
    func broker() async throws {
        let plain = try await TestBroker.freshURL()
        let ca = try TestTLS.file("ca.crt")
        let verified = try AMQPConnection(url: try TestTLS.brokerURL(plain, query: "cacertfile=\(ca)"), heartbeat: 0, timeout: 5)
        try verified.openChannel(1)
        #expect(try verified.declareQueue("over-tls", channel: 1).messages == 0)
        #expect(verified.node.port != 5671, "the test listener's port, from the URL")
        verified.close()

        let withClient = try TestTLS.brokerURL(
            plain, query: "cacertfile=\(ca)&certfile=\(try TestTLS.file("client.crt"))&keyfile=\(try TestTLS.file("client.key"))")
        let shown = try AMQPConnection(url: withClient, heartbeat: 0, timeout: 5)
        try shown.openChannel(1)
        shown.close()

        let otherCA = try TestTLS.brokerURL(plain, query: "cacertfile=\(try TestTLS.file("other-ca.crt"))")
        #expect {
            try AMQPConnection(url: otherCA, heartbeat: 0, timeout: 5)
        } throws: { error in
            (error as? AMQPError)?.kind == .connection
        }
        // The certificate names localhost, not 127.0.0.1.
        let byAddress = try TestTLS.brokerURL(plain, query: "cacertfile=\(ca)").replacingOccurrences(of: "@localhost:", with: "@127.0.0.1:")
        #expect(throws: AMQPError.self) { try AMQPConnection(url: byAddress, heartbeat: 0, timeout: 5) }
        // A CA file that cannot be read is said so, before any node is tried.
        let missing = try TestTLS.brokerURL(plain, query: "cacertfile=/nonexistent/ca.crt")
        #expect {
            try AMQPConnection(url: missing, heartbeat: 0, timeout: 5)
        } throws: { error in
            (error as? AMQPError)?.kind == .usage && "\(error)".contains("/nonexistent/ca.crt")
        }
        // The plain port does not speak TLS: a clear failure, not a hang.
        let wrongPort = "amqps://guest:guest@localhost:" + (plain.split(separator: ":").last.map { String($0.prefix { $0 != "/" }) } ?? "")
        #expect(throws: AMQPError.self) { try AMQPConnection(url: wrongPort + "/x?cacertfile=\(ca)", heartbeat: 0, timeout: 3) }
    }

    @Test(
        "PostgreSQL with sslmode=verify-full: the connection is encrypted (pg_stat_ssl); another CA, or a name the certificate lacks, refused"
    )
    func database() async throws {
        let plain = try TestDatabase.url(database: "postgres")
        let logger = TestDatabase.logger
        let verified = try await PostgresConnection.connect(url: try TestTLS.databaseURL(plain), logger: logger)
        let row = try await verified.query("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").first
        #expect(row?["ssl"] == "t", "the session is encrypted")
        #expect(row?["version"]?.hasPrefix("TLSv1.") == true, "\(row?["version"] ?? "")")
        await #expect(throws: PostgresError.self) {
            _ = try await PostgresConnection.connect(url: try TestTLS.databaseURL(plain, ca: "other-ca.crt"), logger: logger)
        }
        await #expect(throws: PostgresError.self) {
            _ = try await PostgresConnection.connect(url: try TestTLS.databaseURL(plain, host: "127.0.0.1"), logger: logger)
        }
    }

    @Test("the whole pipeline over TLS: 300 occurrences delivered once each, beat's, the worker's and web's connections encrypted")
    func pipeline() async throws {
        try await Pipeline.run(tls: true) { pipeline in
            let (web, port) = try await WebServerTests.startWeb(pipeline)
            let ready = try await RawSocket.exchange(port: port, WebServerTests.request("/readyz", host: "127.0.0.1"))
            #expect(ready.hasPrefix("HTTP/1.1 200"), "web reaches both servers over TLS: \(ready)")
            try await pipeline.createDue(300, name: "tls", due: Date())
            let arrived = try await pipeline.eventually(timeout: 60) { pipeline.receiver.keys("tls").count == 300 }
            #expect(arrived)
            let recorded = try await pipeline.eventually(timeout: 20) { try await pipeline.states()["delivered"] == 300 }
            #expect(recorded)
            #expect(pipeline.receiver.received("tls").count == 300, "none twice")
            // Every program's PostgreSQL sessions are encrypted (the test's own are not).
            let sessions = try await pipeline.pool.query(
                """
                SELECT a.application_name AS name, bool_and(s.ssl) AS ssl, count(*) AS n FROM pg_stat_activity a
                JOIN pg_stat_ssl s ON s.pid = a.pid WHERE a.datname = current_database() AND a.application_name LIKE 'seed-scheduler%'
                GROUP BY 1 ORDER BY 1
                """)
            #expect(
                sessions.count > 0 && sessions.allSatisfy { $0["ssl"] == "t" },
                "\(sessions.map { "\($0["name"] ?? ""): \($0["ssl"] ?? "")" })")
            // Every AMQP connection of this virtual host is TLS.
            let vhost = pipeline.configuration.brokerURL.split(separator: "?").first?.split(separator: "/").last.map(String.init)
            let connections = try TestBroker.rabbitmqctl(["list_connections", "vhost", "ssl"]).split(separator: "\n")
                .map { $0.split(separator: "\t") }.filter { $0.first.map(String.init) == vhost }
            #expect(connections.count >= 3, "beat, the worker and web hold connections: \(connections)")
            #expect(connections.allSatisfy { $0.last == "true" }, "\(connections)")
            await WebServerTests.stop(web)
        }
    }
}
