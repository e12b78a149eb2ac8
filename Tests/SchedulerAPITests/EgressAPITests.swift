import Foundation
import SchedulerCore
import Testing

/// The egress guard at the API: an endpoint whose host is a literal address in a refused
/// range is a 400 naming the field, at create and at update; `EGRESS_ALLOW` opens exactly
/// what it names.
@Suite("Egress guard, API", .serialized)
struct EgressAPITests {
    @Test(arguments: [
        "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://127.0.0.1:15672/api/", "http://2852039166/",
        "http://[::1]:8080/", "http://[::ffff:10.0.0.1]/", "http://0x7f000001/", "https://192.168.1.1/hook", "http://[fd00::1]/",
    ])
    func literalAddressesInRefusedRangesAreRefused(_ endpoint: String) async throws {
        try await APIHarness.run { api in
            let created = try await api.send(
                .post, "/api/v1/schedule/", json: #"{"endpoint":"\#(endpoint)","interval_definition":"1 hours"}"#)
            #expect(created.status == .badRequest, "\(endpoint): \(created.text)")
            #expect(created.text.contains("endpoint") && created.text.contains("refused range"), "\(created.text)")
            // The same at update.
            let schedule = try await api.createSchedule(#"{"endpoint":"http://example.com/hook","interval_definition":"1 hours"}"#)
            let id = try #require(schedule["id"]?.stringValue)
            let patched = try await api.send(.patch, "/api/v1/schedule/\(id)/", json: #"{"endpoint":"\#(endpoint)"}"#)
            #expect(patched.status == .badRequest, "\(patched.text)")
            let unchanged = try await api.send(.get, "/api/v1/schedule/\(id)/")
            #expect(unchanged.object?["endpoint"] == .string("http://example.com/hook"))
        }
    }

    @Test func egressAllowOpensExactlyWhatItNames() async throws {
        try await APIHarness.run(environment: ["EGRESS_ALLOW": "10.1.0.0/16,127.0.0.1"]) { api in
            for allowed in ["http://10.1.2.3/hook", "http://127.0.0.1:9000/hook"] {
                let reply = try await api.send(
                    .post, "/api/v1/schedule/", json: #"{"endpoint":"\#(allowed)","interval_definition":"1 hours"}"#)
                #expect(reply.status == .created, "\(allowed): \(reply.text)")
            }
            for refused in ["http://10.2.0.1/hook", "http://127.0.0.2/hook", "http://169.254.169.254/"] {
                let reply = try await api.send(
                    .post, "/api/v1/schedule/", json: #"{"endpoint":"\#(refused)","interval_definition":"1 hours"}"#)
                #expect(reply.status == .badRequest, "\(refused): \(reply.text)")
            }
        }
    }
}
