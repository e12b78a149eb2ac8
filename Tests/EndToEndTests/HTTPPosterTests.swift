import Foundation
import HTTPClient
import Synchronization
import Testing

/// The HTTP box against a real receiver: libcurl's handles are kept for the next POSTs
/// (`CurlMulti`), and nothing of one POST may reach the next.
@Suite("HTTP box, handles kept for the next POSTs")
struct HTTPPosterTests {
    /// Hands POSTs to a poster one at a time and returns each one's outcome.
    final class Outcomes: Sendable {
        private let stream: AsyncStream<HTTPOutcome>
        let input: AsyncStream<HTTPOutcome>.Continuation
        let poster: HTTPPoster

        init() throws {
            let (stream, input) = AsyncStream.makeStream(of: HTTPOutcome.self)
            self.stream = stream
            self.input = input
            poster = try HTTPPoster(maximumResponseBytes: 1_000_000) { outcomes in
                for outcome in outcomes { input.yield(outcome) }
            }
            poster.start()
        }

        func send(_ post: HTTPPost) async throws -> HTTPOutcome {
            let refused = poster.post([post])
            #expect(refused.isEmpty)
            for await outcome in stream where outcome.id == post.id { return outcome }
            throw CancellationError()
        }
    }

    @Test("a POST after another carries none of its headers, body, URL or timeout")
    func nothingCarriedOver() async throws {
        let receiver = try await Receiver.start()
        let box = try Outcomes()
        // Sequential POSTs: each takes the handle the one before left.
        let first = try await box.send(
            HTTPPost(
                id: 1, url: receiver.url("first"), headers: ["Authorization: Token secret-of-tenant-a", "X-Only-First: 1"],
                body: Array(String(repeating: "a", count: 5000).utf8), timeout: 5))
        #expect(first.status == 200)
        receiver.delay("slow", seconds: 0.6)
        let timedOut = try await box.send(HTTPPost(id: 2, url: receiver.url("slow"), headers: [], body: [], timeout: 0.2))
        #expect(timedOut.failure == .timeout)
        let second = try await box.send(
            HTTPPost(id: 3, url: receiver.url("second"), headers: ["X-Only-Second: 2"], body: Array("{\"b\":1}".utf8), timeout: 5))
        #expect(second.status == 200)
        // Slower than the POST before it was allowed: its own timeout counts, not that one's.
        let patient = try await box.send(HTTPPost(id: 4, url: receiver.url("slow"), headers: [], body: Array("c".utf8), timeout: 5))
        #expect(patient.status == 200)
        let empty = try await box.send(HTTPPost(id: 5, url: receiver.url("empty"), headers: [], body: [], timeout: 5))
        #expect(empty.status == 200)

        let seconds = try await receiver.waitFor("second", count: 1, timeout: 5)
        let got = try #require(seconds.first)
        #expect(got.header("Authorization") == nil)
        #expect(got.header("X-Only-First") == nil)
        #expect(got.header("X-Only-Second") == "2")
        #expect(got.body == "{\"b\":1}")
        #expect(receiver.received("first").count == 1)
        let slow = receiver.received("slow")
        #expect(slow.map(\.body) == ["", "c"])
        #expect(slow.allSatisfy { $0.header("Authorization") == nil && $0.header("X-Only-First") == nil })
        #expect(try #require(receiver.received("empty").first).body == "")
        await box.poster.close()
        await receiver.stop()
    }

    @Test("200 POSTs, 50 at once, each arrives once with its own body and headers (on one thread and on three)", arguments: [1, 3])
    func manyAtOnce(threads: Int) async throws {
        let receiver = try await Receiver.start()
        let (stream, input) = AsyncStream.makeStream(of: HTTPOutcome.self)
        let poster = try HTTPPoster(maximumResponseBytes: 1_000_000, threads: threads) { outcomes in
            for outcome in outcomes { input.yield(outcome) }
        }
        poster.start()
        var next: UInt64 = 1
        func post() -> HTTPPost {
            defer { next += 1 }
            return HTTPPost(
                id: next, url: receiver.url("many"), headers: ["Idempotency-Key: key-\(next)"] + (next % 2 == 0 ? ["X-Even: yes"] : []),
                body: Array("body-\(next)".utf8), timeout: 5)
        }
        #expect(poster.post((0..<50).map { _ in post() }).isEmpty)
        var statuses: [Int?] = []
        for await outcome in stream {
            statuses.append(outcome.status)
            if next <= 200 { #expect(poster.post([post()]).isEmpty) }
            if statuses.count == 200 { break }
        }
        #expect(statuses.allSatisfy { $0 == 200 })
        let got = receiver.received("many")
        #expect(got.count == 200)
        for request in got {
            let key = try #require(request.header("Idempotency-Key"))
            let number = try #require(Int(key.dropFirst("key-".count)))
            #expect(request.body == "body-\(number)")
            #expect((request.header("X-Even") == "yes") == (number % 2 == 0))
        }
        #expect(Set(got.compactMap { $0.header("Idempotency-Key") }).count == 200)
        await poster.close()
        await receiver.stop()
    }

    @Test("on three threads, a cancelled POST ends without an outcome whichever thread has it; the others answer")
    func cancelledOnTheirThreads() async throws {
        let receiver = try await Receiver.start()
        receiver.delay("slow", seconds: 2)
        let (stream, input) = AsyncStream.makeStream(of: HTTPOutcome.self)
        let poster = try HTTPPoster(maximumResponseBytes: 1_000_000, threads: 3) { outcomes in
            for outcome in outcomes { input.yield(outcome) }
        }
        poster.start()
        // Ids 1-6 fall to each of the three threads twice: the odd ones are cancelled.
        let slow = (UInt64(1)...6).map { HTTPPost(id: $0, url: receiver.url("slow"), headers: [], body: [], timeout: 5) }
        #expect(poster.post(slow).isEmpty)
        _ = try await receiver.waitFor("slow", count: 6, timeout: 5)
        poster.cancel([1, 3, 5])
        var answered: [UInt64] = []
        for await outcome in stream {
            #expect(outcome.status == 200)
            answered.append(outcome.id)
            if answered.count == 3 { break }
        }
        #expect(answered.sorted() == [2, 4, 6])
        await poster.close()
        await receiver.stop()
    }
}
