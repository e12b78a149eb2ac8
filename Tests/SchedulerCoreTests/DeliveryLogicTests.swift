import Foundation
import SchedulerCore
import Testing

@Suite("Retry policy")
struct RetryPolicyTests {
    let policy = RetryPolicy(maxAttempts: 6, delays: [5000, 30000, 300_000, 1_800_000])

    @Test("2xx is delivered")
    func delivered() {
        #expect(policy.decide(status: 200, error: nil, attempt: 1, retryAfter: nil) == .delivered)
        #expect(policy.decide(status: 204, error: nil, attempt: 6, retryAfter: nil) == .delivered)
    }

    @Test("connection errors, timeouts, 408, 425, 429 and 5xx are retried with growing delays")
    func retried() {
        #expect(
            policy.decide(status: nil, error: "Couldn't connect to server", attempt: 1, retryAfter: nil)
                == .retry(delayIndex: 0, reason: "Couldn't connect to server"))
        #expect(policy.decide(status: 503, error: nil, attempt: 2, retryAfter: nil) == .retry(delayIndex: 1, reason: "HTTP 503"))
        for status in [408, 425, 429, 500, 502, 599] {
            #expect(policy.decide(status: status, error: nil, attempt: 1, retryAfter: nil) != .delivered)
            if case .dead = policy.decide(status: status, error: nil, attempt: 1, retryAfter: nil) { Issue.record("\(status) dead") }
        }
        // Past the last delay, the longest one is used again.
        #expect(policy.decide(status: 500, error: nil, attempt: 5, retryAfter: nil) == .retry(delayIndex: 3, reason: "HTTP 500"))
    }

    @Test("the last attempt, and other 4xx at once, go to the dead letters")
    func dead() {
        #expect(policy.decide(status: 500, error: nil, attempt: 6, retryAfter: nil) == .dead(reason: "HTTP 500 after 6 attempts"))
        #expect(
            policy.decide(status: 404, error: nil, attempt: 1, retryAfter: nil)
                == .dead(reason: "HTTP 404 after 1 attempt (not retried: the receiver refused the request)"))
        #expect(policy.decide(status: 301, error: nil, attempt: 1, retryAfter: nil) != .delivered)
    }

    @Test("Retry-After picks a delay at least that long")
    func retryAfter() {
        #expect(policy.decide(status: 429, error: nil, attempt: 1, retryAfter: "60") == .retry(delayIndex: 2, reason: "HTTP 429"))
        #expect(policy.decide(status: 429, error: nil, attempt: 1, retryAfter: "1") == .retry(delayIndex: 0, reason: "HTTP 429"))
        #expect(policy.decide(status: 503, error: nil, attempt: 1, retryAfter: "999999") == .retry(delayIndex: 3, reason: "HTTP 503"))
        let now = date("2026-01-01T00:00:00Z")
        #expect(RetryPolicy.milliseconds(retryAfter: "Thu, 01 Jan 2026 00:01:00 GMT", now: now) == 60_000)
    }

    @Test("delays are read from RETRY_DELAYS")
    func delays() {
        #expect(RetryPolicy.parseDelays("5s,30s,5m,30m") == [5000, 30000, 300_000, 1_800_000])
        #expect(RetryPolicy.parseDelays("250ms, 1h") == [250, 3_600_000])
        #expect(RetryPolicy.parseDelays("5") == nil)
        #expect(RetryPolicy.parseDelays("0s") == nil)
        #expect(RetryPolicy.parseDelays("") == nil)
        #expect(RetryPolicy.label(milliseconds: 300_000) == "5m")
        #expect(RetryPolicy.label(milliseconds: 1500) == "1500ms")
    }
}

@Suite("Delivery jobs and next runs")
struct DeliveryJobTests {
    @Test("a job round-trips through its message body")
    func roundTrip() throws {
        let job = DeliveryJob(deliveryID: UUID(), scheduleID: UUID(), scheduledFor: date("2026-01-01T09:00:00.25Z"), kind: .schedule)
        #expect(try DeliveryJob(body: job.json.serializedBytes) == job)
        #expect(try DeliveryJob(body: job.serializedBytes) == job)
        #expect(job.routingKey == "schedule.\(job.scheduleID!.uuidString.lowercased())")
    }

    @Test("a job's bytes written directly are its JSON's, whatever its kind, origin and schedule")
    func directBytes() {
        for kind in [DeliveryJob.Kind.schedule, .webhook] {
            for origin in [DeliveryJob.Origin.scheduled, .manual, .backfill] {
                for schedule in [UUID(), nil] {
                    let job = DeliveryJob(
                        deliveryID: UUID(), scheduleID: schedule, scheduledFor: date("2026-01-01T09:00:00.123456Z"), kind: kind,
                        origin: origin)
                    #expect(job.serializedBytes == job.json.serializedBytes, "\(String(decoding: job.serializedBytes, as: UTF8.self))")
                }
            }
        }
    }

    @Test(
        "malformed bodies say what is wrong",
        arguments: [
            ("nope", "malformed job: not JSON"), ("[]", "malformed job: not a JSON object"),
            (#"{"delivery_id":"x"}"#, "malformed job: delivery_id is missing or not a UUID"),
            (#"{"delivery_id":"7d5bb7a6-5a7e-4a0a-9d2e-0b6f6a1e8f00"}"#, "malformed job: scheduled_for is missing or not a time"),
        ])
    func malformed(body: String, message: String) {
        #expect {
            try DeliveryJob(body: Array(body.utf8))
        } throws: { error in
            (error as? FieldErrorMessage)?.message.hasPrefix(message) == true
        }
    }

    @Test("after firing late, an interval keeps its cadence and skips missed runs")
    func intervalCatchUp() throws {
        let timing = ScheduleTiming(cronDefinition: nil, intervalDefinition: "10 seconds", timezone: "UTC")
        let due = date("2026-01-01T00:00:00Z")
        #expect(try timing.nextRun(afterFiring: due, now: date("2026-01-01T00:00:00.003Z")) == date("2026-01-01T00:00:10Z"))
        #expect(try timing.nextRun(afterFiring: due, now: date("2026-01-01T00:00:35Z")) == date("2026-01-01T00:00:40Z"))
        #expect(try timing.nextRun(afterFiring: due, now: date("2026-01-01T00:00:40Z")) == date("2026-01-01T00:00:50Z"))
    }

    @Test("after firing late, a cron schedule continues from now")
    func cronCatchUp() throws {
        let timing = ScheduleTiming(cronDefinition: "0 * * * *", intervalDefinition: nil, timezone: "UTC")
        #expect(
            try timing.nextRun(afterFiring: date("2026-01-01T00:00:00Z"), now: date("2026-01-01T05:30:00Z")) == date("2026-01-01T06:00:00Z")
        )
        #expect(try ScheduleTiming.none.nextRun(afterFiring: date("2026-01-01T00:00:00Z"), now: Date()) == nil)
    }
}
