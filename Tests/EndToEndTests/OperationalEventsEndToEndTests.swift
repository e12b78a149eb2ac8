import Crypto
import DeliveryQueues
import Foundation
import SchedulerCore
import SchedulerStore
import Testing

/// Hooks told of pauses, dead letters and receivers' circuits, and receivers' limits set by
/// hand, with the real programs and real receivers.
@Suite("Operational events and receivers' limits, end to end", .timeLimit(.minutes(5)))
struct OperationalEventsEndToEndTests {
    static let signingSecret = "a-signing-secret-for-events"

    /// The body of a hook call, after checking its Standard Webhooks signature.
    static func verified(_ call: Receiver.Request) throws -> JSONObject {
        let id = try #require(call.header("webhook-id"))
        let timestamp = try #require(call.header("webhook-timestamp"))
        let signed = Data("\(id).\(timestamp).\(call.body)".utf8)
        let key = SymmetricKey(data: Data(signingSecret.utf8))
        let expected = "v1," + Data(HMAC<SHA256>.authenticationCode(for: signed, using: key)).base64EncodedString()
        #expect(call.header("webhook-signature") == expected, "signed like a delivery")
        let value = try JSONParser.parse(call.body)
        return try #require(value.objectValue)
    }

    /// The `data` of the first of `calls`, verified.
    static func data(_ calls: [Receiver.Request], at index: Int = 0) throws -> JSONObject {
        try #require(calls.count > index)
        let body = try verified(calls[index])
        return try #require(body["data"]?.objectValue)
    }

    @Test(
        "a tenant's hooks hear of their schedule's pause (by them, with the note; by its failures) and dead letter (with the reason); another tenant's hear nothing; an admin's hear all with HOOK_AUTH_TOKEN"
    )
    func pausesAndDeadLetters() async throws {
        let environment = [
            "HOOK_AUTH_TOKEN": "hook-token", "SIGNING_SECRET": Self.signingSecret, "DELIVERY_ATTEMPTS": "2",
            "RETRY_DELAYS": "1s", "SCHEDULE_PAUSE_AFTER_FAILURES": "1",
        ]
        try await Pipeline.run(environment: environment) { pipeline in
            let users = UserStore(pool: pipeline.pool, minter: TokenMinter(secretKey: Pipeline.secretKey))
            let alice = try await users.issueToken(email: "alice@example.org", admin: false).token
            let bob = try await users.issueToken(email: "bob@example.org", admin: false).token
            for (token, name) in [(alice, "alice"), (bob, "bob"), (pipeline.adminToken, "admin")] {
                for event in ["schedule.paused", "delivery.failed"] {
                    let target = pipeline.receiver.url("\(name)-\(event)")
                    let (status, body) = try await pipeline.send(
                        .post, "/api/v1/webhook/", json: #"{"event":"\#(event)","target":"\#(target)"}"#, as: token)
                    #expect(status == .created, "\(body?.serialized ?? "")")
                }
            }
            // Receivers are everyone's: a tenant may not hear of them.
            let (refused, why) = try await pipeline.send(
                .post, "/api/v1/webhook/", json: #"{"event":"receiver.opened","target":"\#(pipeline.receiver.url("x"))"}"#, as: alice)
            #expect(refused == .badRequest && why?.serialized.contains("admins only") == true)

            // Alice pauses one schedule with a note.
            let (_, created) = try await pipeline.send(
                .post, "/api/v1/schedule/", json: #"{"endpoint":"\#(pipeline.receiver.url("quiet"))","interval_definition":"1 hours"}"#,
                as: alice)
            let quiet = try #require(created?.objectValue?["id"]?.stringValue)
            let (patched, _) = try await pipeline.send(
                .patch, "/api/v1/schedule/\(quiet)/", json: #"{"enabled":false,"paused_note":"receiver moving"}"#, as: alice)
            #expect(patched == .ok)
            let paused = try await pipeline.receiver.waitFor("alice-schedule.paused", count: 1, timeout: 10)
            let pause = try Self.verified(try #require(paused.first))
            #expect(pause["hook"]?.objectValue?["event"] == .string("schedule.paused"))
            let data = try #require(pause["data"]?.objectValue)
            #expect(data["schedule_id"] == .string(quiet) && data["paused_note"] == .string("receiver moving"))
            #expect(data["cause"] == .string("user") && data["paused_by"] != .null)
            #expect(try #require(paused.first).header("Authorization") == nil, "HOOK_AUTH_TOKEN is for admins' hooks")
            let adminHeard = try await pipeline.receiver.waitFor("admin-schedule.paused", count: 1, timeout: 10)
            #expect(try #require(adminHeard.first).header("Authorization") == "Token hook-token")

            // Alice's other schedule fails for good (404 twice): a dead letter, and with
            // SCHEDULE_PAUSE_AFTER_FAILURES=1 a pause by its failures.
            pipeline.receiver.script("failing", [404, 404, 404])
            let (_, failingBody) = try await pipeline.send(
                .post, "/api/v1/schedule/",
                json:
                    #"{"endpoint":"\#(pipeline.receiver.url("failing"))","interval_definition":"1 hours","next_send_at":"\#(Timestamp.format(Date()))"}"#,
                as: alice)
            let failing = try #require(failingBody?.objectValue?["id"]?.stringValue)
            let failed = try await pipeline.receiver.waitFor("alice-delivery.failed", count: 1, timeout: 20)
            let failure = try Self.data(failed)
            #expect(failure["schedule_id"] == .string(failing) && failure["last_status"] == .int(404))
            #expect(failure["reason"]?.stringValue?.contains("404") == true, "\(failure["reason"]?.serialized ?? "")")
            #expect(failure["attempts"] == .int(1), "a 404 is final: one attempt")
            let byFailures = try await pipeline.receiver.waitFor("alice-schedule.paused", count: 2, timeout: 10)
            let second = try Self.data(byFailures, at: 1)
            #expect(second["schedule_id"] == .string(failing) && second["cause"] == .string("failures"))
            #expect(second["paused_by"] == .null && second["reason"]?.stringValue?.hasPrefix("paused:") == true)
            #expect(try await pipeline.receiver.waitFor("admin-delivery.failed", count: 1, timeout: 10).count == 1)

            // Told once each; bob heard nothing of alice's schedules.
            try await Task.sleep(for: .seconds(2))
            #expect(pipeline.receiver.received("alice-delivery.failed").count == 1)
            #expect(pipeline.receiver.received("alice-schedule.paused").count == 2)
            #expect(pipeline.receiver.received("bob-schedule.paused").isEmpty && pipeline.receiver.received("bob-delivery.failed").isEmpty)
            // Hook calls are their hooks' owners' records: listed with alice's schedule for her.
            let (_, listed) = try await pipeline.send(.get, "/api/v1/schedule/\(failing)/deliveries/", as: alice)
            guard case .array(let results)? = listed?.objectValue?["results"] else {
                Issue.record("no deliveries listed: \(listed?.serialized ?? "")")
                return
            }
            let kinds = results.compactMap { $0.objectValue?["kind"]?.stringValue }
            #expect(kinds.filter { $0 == "webhook" }.count == 2, "her delivery.failed and schedule.paused calls: \(kinds)")
        }
    }

    @Test("a receiver's circuit opening and closing is told once each to admins' receiver hooks, signed")
    func receiverCircuit() async throws {
        let environment = [
            "SIGNING_SECRET": Self.signingSecret, "BREAKER_OPEN_AFTER": "1", "BREAKER_MIN_FAILURES": "2",
            "BREAKER_PROBE_INTERVAL": "1", "DELIVERY_ATTEMPTS": "10",
        ]
        try await Pipeline.run(environment: environment) { pipeline in
            // The failing receiver is a server of its own: the hooks' receiver stays healthy.
            let down = try await Receiver.start()
            defer { Task { await down.stop() } }
            down.script("down", Array(repeating: 503, count: 6))
            for event in ["receiver.opened", "receiver.closed"] {
                let (status, _) = try await pipeline.send(
                    .post, "/api/v1/webhook/", json: #"{"event":"\#(event)","target":"\#(pipeline.receiver.url(event))"}"#)
                #expect(status == .created)
            }
            _ = try await pipeline.createSchedule(#"{"endpoint":"\#(down.url("down"))","interval_definition":"1 seconds"}"#)
            let opened = try await pipeline.receiver.waitFor("receiver.opened", count: 1, timeout: 20)
            let openData = try Self.data(opened)
            let key = "http://127.0.0.1:\(down.port)"
            #expect(openData["receiver"] == .string(key) && openData["from"] == .string("closed") && openData["to"] == .string("open"))
            let closed = try await pipeline.receiver.waitFor("receiver.closed", count: 1, timeout: 30)
            let closeData = try Self.data(closed)
            #expect(closeData["receiver"] == .string(key) && closeData["to"] == .string("closed"))
            #expect(closeData["reason"] == .string("the probe succeeded"))
            try await Task.sleep(for: .seconds(2))
            #expect(pipeline.receiver.received("receiver.opened").count == 1 && pipeline.receiver.received("receiver.closed").count == 1)
        }
    }

    @Test(
        "receivers set: a slow receiver (8 s a request) given a concurrency of 400 takes 400 due at once together, where another is held at 8"
    )
    func concurrencySetByHand() async throws {
        try await Pipeline.run(environment: ["DELIVERY_TIMEOUT": "30"]) { pipeline in
            let slow = try await Receiver.start()
            let held = try await Receiver.start()
            defer {
                Task {
                    await slow.stop()
                    await held.stop()
                }
            }
            slow.delay("slow", seconds: 8)
            held.delay("held", seconds: 8)
            let (status, output) = try ctl(pipeline, ["receivers", "set", slow.url("slow"), "--concurrency", "400"])
            #expect(status == 0, "\(output)")
            #expect(output.contains("concurrency 400"))
            // The worker reads the limits at its next sync (every 2 s).
            try await Task.sleep(for: .seconds(3))
            let due = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.up) + 2)
            try await pipeline.pool.query(
                """
                INSERT INTO schedules (id, endpoint, next_send_at)
                SELECT gen_random_uuid(), $1, $3::timestamptz FROM generate_series(1, 400)
                UNION ALL SELECT gen_random_uuid(), $2, $3::timestamptz FROM generate_series(1, 40)
                """, [slow.url("slow"), held.url("held"), Timestamp.format(due)])
            let requests = try await slow.waitFor("slow", count: 400, timeout: 30)
            let arrivals = requests.map(\.arrived).sorted()
            let spread = try #require(arrivals.last).timeIntervalSince(try #require(arrivals.first))
            #expect(spread < 4, "all 400 went out together, not 8 every 8 s: spread over \(spread) s")
            #expect(slow.mostAtOnce("slow") > 300, "at once: \(slow.mostAtOnce("slow"))")
            #expect(held.mostAtOnce("held") == 8, "no limits set: the adaptive limit: \(held.mostAtOnce("held"))")
            let (_, listed) = try ctl(pipeline, ["receivers", "list", "--json"])
            let line = try #require(listed.split(separator: "\n").first { $0.contains("\(slow.port)") })
            let limits = try JSONParser.parse(String(line)).objectValue?["limits"]?.objectValue
            #expect(limits?["concurrency"] == .int(400) && limits?["rate"] == .null)
        }
    }

    @Test("receivers set: a rate of 5 a second with a burst of 5 lets 5 through at once, then 5 a second, with two workers sharing it")
    func rateSetByHand() async throws {
        try await Pipeline.run { pipeline in
            await pipeline.startWorker(name: "worker-2")
            let rated = try await Receiver.start()
            defer { Task { await rated.stop() } }
            let (status, output) = try ctl(pipeline, ["receivers", "set", rated.url("rated"), "--rate", "5", "--burst", "5"])
            #expect(status == 0, "\(output)")
            // Both workers alive, then each synced again (every 2 s): that sync counted the
            // other, and handed the worker its share.
            let both = try await pipeline.eventually(timeout: 15) {
                try await pipeline.pool.query("SELECT count(*) AS n FROM workers").first?["n"] == "2"
            }
            try #require(both)
            let since = try #require(try await pipeline.pool.query("SELECT max(seen_at)::text AS t FROM workers").first?["t"])
            let synced = try await pipeline.eventually(timeout: 15) {
                try await pipeline.pool.query("SELECT count(*) AS n FROM workers WHERE seen_at > $1::timestamptz", [since]).first?["n"]
                    == "2"
            }
            try #require(synced)
            try await Task.sleep(for: .seconds(0.5))
            let due = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.up) + 2)
            try await pipeline.pool.query(
                "INSERT INTO schedules (id, endpoint, next_send_at) SELECT gen_random_uuid(), $1, $2 FROM generate_series(1, 30)",
                [rated.url("rated"), Timestamp.format(due)])
            let requests = try await rated.waitFor("rated", count: 30, timeout: 30)
            let arrivals = requests.map(\.arrived).sorted()
            let first = try #require(arrivals.first)
            // Request i (from 0) may leave once the bucket has refilled i - 5 times at 5 a
            // second: never earlier (a little slack for the two workers' clocks of ticks).
            for (index, arrival) in arrivals.enumerated() where index >= 5 {
                let earliest = Double(index - 5) / 5 - 0.25
                #expect(arrival.timeIntervalSince(first) >= earliest, "request \(index) at \(arrival.timeIntervalSince(first)) s")
            }
            let span = try #require(arrivals.last).timeIntervalSince(first)
            #expect(span < 12, "the rate, not much slower: \(span) s")
        }
    }
}
