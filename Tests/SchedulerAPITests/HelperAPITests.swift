import Foundation
import Hummingbird
import SchedulerCore
import TestSupport
import Testing

@Suite("Webhooks, health and metrics", .scratch)
struct HelperAPITests {
    @Test("webhooks: create, list, update and delete; each user sees only their own")
    func webhooks() async throws {
        try await APIHarness.run { api in
            let created = try await api.send(
                .post, "/api/v1/webhook/", json: #"{"event":"schedule.added","target":"http://hooks.example.org/in"}"#)
            #expect(created.status == .created, "\(created.text)")
            let hook = try #require(created.object)
            #expect(hook.keys == ["id", "created", "updated", "user", "event", "target"])
            let id = try #require(hook["id"]?.integerValue)
            let uri = "/api/v1/webhook/\(id)/"

            #expect(try await api.send(.get, "/api/v1/webhook/").object?["count"] == .int(1))
            #expect(try await api.send(.get, "/api/v1/webhook/", token: api.adminToken).object?["count"] == .int(0))
            #expect(try await api.send(.get, uri, token: api.adminToken).status == .notFound)

            let patched = try await api.send(.patch, uri, json: #"{"target":"https://hooks.example.org/v2"}"#)
            #expect(patched.object?["target"] == .string("https://hooks.example.org/v2"))
            #expect(patched.object?["event"] == .string("schedule.added"))
            let put = try await api.send(.put, uri, json: #"{"target":"https://hooks.example.org/v3"}"#)
            #expect(put.status == .badRequest)
            #expect(put.errors("event") == ["This field is required."])

            let bad = try await api.send(.post, "/api/v1/webhook/", json: #"{"event":"schedule.exploded","target":"nope"}"#)
            #expect(bad.status == .badRequest)
            #expect(bad.errors("event") == ["\"schedule.exploded\" is not a valid choice."])
            #expect(bad.errors("target") == ["Enter a valid URL."])

            #expect(try await api.send(.delete, uri, token: api.adminToken).status == .notFound)
            #expect(try await api.send(.delete, uri).status == .noContent)
            #expect(try await api.send(.get, uri).status == .notFound)
        }
    }

    @Test("webhooks: every user may hear of pauses and dead letters; only admins of receivers' circuits, also by a PATCH")
    func operationalEvents() async throws {
        try await APIHarness.run { api in
            for event in ["schedule.paused", "delivery.failed"] {
                let created = try await api.send(
                    .post, "/api/v1/webhook/", json: #"{"event":"\#(event)","target":"http://hooks.example.org/in"}"#)
                #expect(created.status == .created, "\(created.text)")
            }
            for event in ["receiver.opened", "receiver.closed"] {
                let refused = try await api.send(
                    .post, "/api/v1/webhook/", json: #"{"event":"\#(event)","target":"http://hooks.example.org/in"}"#)
                #expect(refused.errors("event") == ["\"\(event)\" is for admins only: receivers are shared by every tenant."])
                let admins = try await api.send(
                    .post, "/api/v1/webhook/", json: #"{"event":"\#(event)","target":"http://ops.example.org/in"}"#, token: api.adminToken)
                #expect(admins.status == .created)
            }
            let mine = try await api.send(
                .post, "/api/v1/webhook/", json: #"{"event":"schedule.added","target":"http://hooks.example.org/in"}"#)
            let id = try #require(mine.object?["id"]?.integerValue)
            let patched = try await api.send(.patch, "/api/v1/webhook/\(id)/", json: #"{"event":"receiver.opened"}"#)
            #expect(patched.status == .badRequest, "a tenant cannot move a hook onto receivers' events")
        }
    }

    @Test("health: 503 naming the broker when it cannot be reached")
    func healthDown() async throws {
        try await APIHarness.run { api in
            let reply = try await api.send(.get, "/api/health/")
            #expect(reply.status == .serviceUnavailable)
            #expect(reply.object?["up"] == .bool(false))
            guard case .object(let result)? = reply.object?["result"] else { throw TestFailure("no result") }
            #expect(result["database"] == .string("Accessible"))
            #expect(result["broker"]?.stringValue?.hasPrefix("Inaccessible") == true)
            #expect(result["version"] == .string(SchedulerVersion.current))
            // The body names no host, port or user (the log has the detail).
            #expect(!reply.text.contains("127.0.0.1") && !reply.text.contains("guest"), "\(reply.text)")
        }
    }

    @Test("health and metrics: a crowd of requests is answered over one broker connection, from readings a few seconds old")
    func healthIsCached() async throws {
        let brokerURL = try await TestBroker.freshURL()
        let vhost = try #require(URL(string: brokerURL)?.lastPathComponent)
        try await APIHarness.run(environment: ["BROKER_URL": brokerURL]) { api in
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for index in 0..<60 {
                    group.addTask { try await api.send(.get, index % 2 == 0 ? "/api/health/" : "/metrics").status }
                }
                return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
            }
            #expect(statuses.count == 60 && statuses.allSatisfy { $0 == .ok }, "\(statuses)")
            let connections = try TestBroker.rabbitmqctl(["list_connections", "vhost"])
                .split(separator: "\n").filter { $0.trimmingCharacters(in: .whitespaces) == vhost }
            #expect(connections.count == 1, "one long-lived connection to the broker, not one per request")
            // Later readings reuse it. (On a machine loaded by the parallel suites a reading
            // can exceed its 5 s deadline and report the broker down; the next one is asked
            // for, and still over one connection.)
            try await Task.sleep(for: .seconds(3.5))
            var later200 = false
            for _ in 0..<5 where !later200 {
                later200 = try await api.send(.get, "/api/health/").status == .ok
                if !later200 { try await Task.sleep(for: .seconds(3.5)) }
            }
            #expect(later200)
            let later = try TestBroker.rabbitmqctl(["list_connections", "vhost"])
                .split(separator: "\n").filter { $0.trimmingCharacters(in: .whitespaces) == vhost }
            #expect(later.count == 1)
        }
    }

    @Test("health: 200 when the database and RabbitMQ answer")
    func healthUp() async throws {
        try await APIHarness.run(environment: ["BROKER_URL": try TestBroker.baseURL + "/%2f"]) { api in
            let reply = try await api.send(.get, "/api/health/")
            #expect(reply.status == .ok)
            #expect(
                reply.json?.serialized
                    == #"{"up":true,"result":{"database":"Accessible","broker":"Accessible","version":"\#(SchedulerVersion.current)"}}"#)
        }
    }

    @Test("metrics: the keys, and a push started")
    func metrics() async throws {
        try await APIHarness.run { api in
            let list = try await api.send(.get, "/api/metrics/")
            #expect(list.status == .ok)
            #expect(list.object?["metrics_available"] == .array(MetricKeys.available.map(JSONValue.string)))
            let fire = try await api.send(.post, "/api/metrics/")
            #expect(fire.status == .created)
            #expect(fire.json?.serialized == #"{"scheduled_metrics_initiated":true}"#)
        }
    }
}
