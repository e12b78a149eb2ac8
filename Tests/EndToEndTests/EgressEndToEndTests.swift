import Foundation
import SchedulerCore
import Testing

/// The egress guard at delivery: a host name is judged on the address it resolves to when
/// the worker connects, a stored literal address is judged again, and a refusal is
/// dead-lettered at once with `egress-denied`; `EGRESS_ALLOW` opens exactly what it names.
@Suite("Egress guard, end to end", .timeLimit(.minutes(2)))
struct EgressEndToEndTests {
    @Test(
        "a name resolving to a refused address and a stored literal one are dead-lettered with egress-denied; an allowed address is delivered"
    )
    func resolvedAddressesAreJudged() async throws {
        // Only 127.0.0.2 is open to this worker: localhost (127.0.0.1, ::1) is not.
        try await Pipeline.run(environment: ["DELIVERY_ATTEMPTS": "3", "RETRY_DELAYS": "1s"], worker: false) { pipeline in
            let allowed = try await Receiver.start(host: "127.0.0.2")
            defer { Task { await allowed.stop() } }
            // A proxy named in the environment, on the allowed address, is ignored: it would
            // connect for the worker, past the guard.
            let proxyBase = "http://\(allowed.host):\(allowed.port)"
            let worker = try pipeline.launch(
                "worker", extra: ["EGRESS_ALLOW": "127.0.0.2", "http_proxy": proxyBase, "ALL_PROXY": proxyBase])
            let named = pipeline.receiver.url("named").replacingOccurrences(of: "127.0.0.1", with: "localhost")
            let literal = pipeline.receiver.url("literal")
            let open = allowed.url("open")
            for endpoint in [named, literal, open] {
                try await ReceiverIsolationTests.schedules(pipeline, count: 1, endpoint: endpoint, due: Date())
            }
            let delivered = try await allowed.waitFor("open", count: 1, timeout: 15)
            #expect(delivered.count == 1, "127.0.0.2 is allowed and delivered")
            for endpoint in [named, literal] {
                let dead = try await pipeline.eventually(timeout: 15) {
                    try await ReceiverIsolationTests.records(pipeline, endpoint: endpoint).first?.state == "dead"
                }
                #expect(dead, "\(endpoint) is dead-lettered")
                let row = try await pipeline.pool.query(
                    "SELECT d.attempts, d.last_error FROM deliveries d JOIN schedules s ON s.id = d.schedule_id WHERE s.endpoint = $1",
                    [endpoint]
                ).first
                #expect(row?["last_error"]?.contains("egress-denied") == true, "\(String(describing: row?["last_error"]))")
                #expect(row?["attempts"].flatMap { Int($0) } ?? 99 <= 1, "refused at once, not retried")
            }
            #expect(pipeline.receiver.received("named").isEmpty && pipeline.receiver.received("literal").isEmpty)
            #expect(allowed.received("named").isEmpty && allowed.received("literal").isEmpty, "nothing went through the proxy")
            #expect(worker.isRunning)
        }
    }
}
