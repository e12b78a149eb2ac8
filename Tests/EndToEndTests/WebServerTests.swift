import Foundation
import Postgres
import SchedulerCore
import TestSupport
import Testing

/// The `scheduler-web` program as a stranger meets it, over plain sockets: a made-up
/// `Host`, connections that send half a request and then nothing, a crowd of bad tokens.
@Suite("scheduler-web's connections", .serialized)
struct WebServerTests {
    /// Starts scheduler-web on a free port with `extra` settings; returns the port once it answers.
    static func startWeb(_ pipeline: Pipeline, extra: [String: String] = [:]) async throws -> (Process, Int) {
        let port = try ProgramTests.freePort()
        let process = try pipeline.launch("web", extra: ["PORT": String(port), "HOST": "127.0.0.1"].merging(extra) { $1 })
        let up = try await pipeline.eventually(timeout: 30) {
            (try? await RawSocket.exchange(port: port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", timeout: 2))?
                .hasPrefix("HTTP/1.1 200") == true
        }
        try #require(up, "scheduler-web did not answer within 30 s")
        return (process, port)
    }

    static func stop(_ process: Process) async {
        process.terminate()
        for _ in 0..<500 where process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
        #expect(!process.isRunning && process.terminationStatus == 0, "scheduler-web exits 0 on SIGTERM")
    }

    static func request(_ path: String, host: String, token: String? = nil) -> String {
        "GET \(path) HTTP/1.1\r\nHost: \(host)\r\n" + (token.map { "Authorization: Token \($0)\r\n" } ?? "") + "Connection: close\r\n\r\n"
    }

    /// The status line's start of a normal list request ("HTTP/1.1 200"), or "no answer".
    static func status(port: Int, token: String) async -> String {
        let answer = try? await RawSocket.exchange(port: port, request("/api/v1/schedule/", host: "127.0.0.1", token: token), timeout: 10)
        return String(answer?.prefix(12) ?? "no answer")
    }

    /// The time one normal request takes, in seconds.
    static func timed(port: Int, token: String) async throws -> (seconds: Double, answer: String) {
        let started = Date()
        let answer = try await RawSocket.exchange(port: port, request("/api/v1/schedule/", host: "127.0.0.1", token: token))
        return (Date().timeIntervalSince(started), answer)
    }

    @Test("a Host outside ALLOWED_HOSTS is a 400; an allowed one builds the URLs; probes pass by address")
    func hostHeader() async throws {
        try await Pipeline.run(beat: false, worker: false) { pipeline in
            let (web, port) = try await Self.startWeb(pipeline, extra: ["ALLOWED_HOSTS": "api.example.org,127.0.0.1"])
            let evil = try await RawSocket.exchange(
                port: port, Self.request("/api/v1/schedule/", host: "evil.example", token: pipeline.adminToken))
            #expect(evil.hasPrefix("HTTP/1.1 400"), "\(evil)")
            #expect(evil.contains("ALLOWED_HOSTS"))
            let fine = try await RawSocket.exchange(
                port: port, Self.request("/api/v1/user/?limit=1", host: "API.example.org:8443", token: pipeline.adminToken))
            #expect(fine.hasPrefix("HTTP/1.1 200"), "\(fine)")
            #expect(fine.contains("http://api.example.org:8443/api/v1/user/"), "\(fine)")
            let scrape = try await RawSocket.exchange(port: port, Self.request("/metrics", host: "10.9.8.7:8000"))
            #expect(scrape.hasPrefix("HTTP/1.1 200"))
            let probe = try await RawSocket.exchange(port: port, Self.request("/readyz", host: "10.9.8.7:8000"))
            #expect(probe.hasPrefix("HTTP/1.1 200"), "\(probe)")
            await Self.stop(web)
        }
    }

    @Test(
        "probes without a token: /livez 200; /readyz 200 while PostgreSQL and RabbitMQ answer, 503 naming the broker when it does not (no host in the answer); scheduler-ctl probe reads PORT"
    )
    func probes() async throws {
        try await Pipeline.run(beat: false, worker: false) { pipeline in
            let (web, port) = try await Self.startWeb(pipeline)
            let live = try await RawSocket.exchange(port: port, Self.request("/livez", host: "127.0.0.1"))
            #expect(live.hasPrefix("HTTP/1.1 200") && live.contains(#"{"live":true}"#), "\(live)")
            let ready = try await RawSocket.exchange(port: port, Self.request("/readyz", host: "127.0.0.1"))
            #expect(
                ready.hasPrefix("HTTP/1.1 200") && ready.contains(#"{"ready":true,"checks":{"broker":"ok","database":"ok"}}"#), "\(ready)")
            // The default URL: this host's PORT.
            let process = Process()
            process.executableURL = productsDirectory.appendingPathComponent("scheduler-ctl")
            process.arguments = ["probe"]
            process.environment = ["PORT": String(port)]
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "scheduler-ctl probe with PORT set reaches web's /readyz")
            // Web's /metrics, with API requests counted, as Prometheus' own linter wants it.
            _ = try await RawSocket.exchange(port: port, Self.request("/api/v1/schedule/", host: "127.0.0.1", token: pipeline.adminToken))
            let lint = try ProgramTests.promtool(port: port)
            #expect(lint.status == 0 && lint.output.isEmpty, "promtool check metrics: \(lint.output)")
            #expect(try ProgramTests.scrape(port: port).types["hb_requests_total"] == "counter")

            let nobody = try ProgramTests.freePort()
            let (lost, lostPort) = try await Self.startWeb(pipeline, extra: ["BROKER_URL": "amqp://guest:guest@127.0.0.1:\(nobody)/%2f"])
            let notReady = try await RawSocket.exchange(port: lostPort, Self.request("/readyz", host: "127.0.0.1"))
            #expect(notReady.hasPrefix("HTTP/1.1 503"), "\(notReady)")
            #expect(notReady.contains(#""database":"ok""#) && !notReady.contains(#""broker":"ok""#), "\(notReady)")
            #expect(!notReady.contains(String(nobody)), "no host or port in the answer")
            let stillLive = try await RawSocket.exchange(port: lostPort, Self.request("/livez", host: "127.0.0.1"))
            #expect(stillLive.hasPrefix("HTTP/1.1 200"))
            await Self.stop(lost)
            await Self.stop(web)
        }
    }

    @Test(
        "2,000 connections that send half a request line and then nothing: a normal request is answered within a second, and they are closed after HTTP_HEADER_TIMEOUT"
    )
    func slowConnections() async throws {
        try await Pipeline.run(beat: false, worker: false) { pipeline in
            let (web, port) = try await Self.startWeb(pipeline, extra: ["HTTP_HEADER_TIMEOUT": "3"])
            let held: [RawSocket] = try await withCheckedThrowingContinuation { continuation in
                DispatchQueue.global().async {
                    do {
                        var sockets: [RawSocket] = []
                        for _ in 0..<2000 {
                            let socket = try RawSocket(port: port)
                            try socket.send("GET /api/v1/sched")
                            sockets.append(socket)
                        }
                        continuation.resume(returning: sockets)
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
            }
            let (seconds, answer) = try await Self.timed(port: port, token: pipeline.adminToken)
            #expect(answer.hasPrefix("HTTP/1.1 200"), "\(answer.prefix(200))")
            #expect(seconds < 1, "a normal request took \(seconds) s beside 2,000 slow connections")
            // All closed by the server within the header timeout (and a little).
            let closed = try await pipeline.eventually(timeout: 10) { held.allSatisfy(\.closedByPeer) }
            #expect(closed, "\(held.filter { !$0.closedByPeer }.count) of 2,000 still open 10 s later")
            // A kept-alive connection that sends a request, then nothing, is closed after the idle timeout too.
            await Self.stop(web)
        }
    }

    @Test("a kept-alive connection idle past HTTP_IDLE_TIMEOUT is closed; a request trickled within the header timeout is answered")
    func idleConnections() async throws {
        try await Pipeline.run(beat: false, worker: false) { pipeline in
            let (web, port) = try await Self.startWeb(pipeline, extra: ["HTTP_HEADER_TIMEOUT": "3", "HTTP_IDLE_TIMEOUT": "2"])
            let socket = try RawSocket(port: port)
            try socket.send("GET /metrics HTTP/1.1\r\n")
            try await Task.sleep(for: .seconds(1))
            try socket.send("Host: 127.0.0.1\r\n\r\n")
            let answer = socket.read(timeout: 1)
            #expect(answer.text.hasPrefix("HTTP/1.1 200"), "\(answer.text.prefix(100))")
            #expect(!answer.closed)
            let later = socket.read(timeout: 4)
            #expect(later.closed, "the idle connection was closed")
            await Self.stop(web)
        }
    }

    @Test("failed authentications from one address are throttled: past AUTH_FAILURES_PER_MINUTE, a 429 with Retry-After and no look-up")
    func authenticationThrottle() async throws {
        try await Pipeline.run(beat: false, worker: false) { pipeline in
            let (web, port) = try await Self.startWeb(pipeline, extra: ["AUTH_FAILURES_PER_MINUTE": "5"])
            // Requests without credentials are plain 401s and count nothing.
            for _ in 0..<10 {
                let bare = try await RawSocket.exchange(port: port, Self.request("/api/v1/schedule/", host: "127.0.0.1"))
                #expect(bare.hasPrefix("HTTP/1.1 401"))
            }
            var statuses: [String] = []
            for index in 0..<8 {
                let answer = try await RawSocket.exchange(
                    port: port, Self.request("/api/v1/schedule/", host: "127.0.0.1", token: "wrong\(index)"))
                statuses.append(String(answer.prefix(12)))
                if index == 7 {
                    #expect(answer.lowercased().contains("retry-after:"), "\(answer)")
                }
            }
            #expect(statuses == Array(repeating: "HTTP/1.1 401", count: 5) + Array(repeating: "HTTP/1.1 429", count: 3), "\(statuses)")
            // The right token is throttled too from that address (it cannot be told apart
            // without the look-up the throttle saves).
            let right = try await RawSocket.exchange(
                port: port, Self.request("/api/v1/schedule/", host: "127.0.0.1", token: pipeline.adminToken))
            #expect(right.hasPrefix("HTTP/1.1 429"))
            await Self.stop(web)
        }
    }

    @Test("a statement past DATABASE_STATEMENT_TIMEOUT is a 503 with Retry-After, answered at the timeout, and the next request is served")
    func slowStatement() async throws {
        try await Pipeline.run(beat: false, worker: false) { pipeline in
            let (web, port) = try await Self.startWeb(pipeline, extra: ["DATABASE_STATEMENT_TIMEOUT": "1"])
            // Another session holds the schedules table: the list's statement waits for it.
            let holder = try await PostgresConnection.connect(url: pipeline.configuration.databaseURL, logger: pipeline.logger)
            try await holder.execute("BEGIN; LOCK TABLE schedules IN ACCESS EXCLUSIVE MODE")
            let started = Date()
            let answer = try await RawSocket.exchange(
                port: port, Self.request("/api/v1/schedule/", host: "127.0.0.1", token: pipeline.adminToken), timeout: 20)
            let took = Date().timeIntervalSince(started)
            try await holder.execute("ROLLBACK")
            #expect(answer.hasPrefix("HTTP/1.1 503"), "\(answer.prefix(200))")
            #expect(answer.lowercased().contains("retry-after:"), "\(answer.prefix(300))")
            #expect(took >= 0.9 && took < 4, "answered at the statement timeout (1 s), in \(took) s")
            let after = try await RawSocket.exchange(
                port: port, Self.request("/api/v1/schedule/", host: "127.0.0.1", token: pipeline.adminToken))
            #expect(after.hasPrefix("HTTP/1.1 200"))
            await Self.stop(web)
        }
    }
}
