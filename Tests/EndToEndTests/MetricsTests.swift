import Foundation
import SchedulerCore
import TestSupport
import Testing

/// A strict reader of the Prometheus text exposition format (version 0.0.4).
struct PrometheusText {
    struct Sample: Equatable {
        let name: String
        let labels: [String: String]
        let value: Double
    }

    var types: [String: String] = [:]
    var samples: [Sample] = []

    struct ParseError: Error, CustomStringConvertible {
        let description: String
    }

    init(_ text: String) throws {
        let nameCharacters = CharacterSet.letters.union(.decimalDigits).union(CharacterSet(charactersIn: "_:"))
        func validName(_ name: Substring) -> Bool {
            !name.isEmpty && name.unicodeScalars.allSatisfy(nameCharacters.contains) && !(name.first!.isNumber)
        }
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty { continue }
            if line.hasPrefix("#") {
                let parts = line.split(separator: " ", maxSplits: 3)
                if parts.count >= 3, parts[1] == "TYPE" {
                    guard parts.count == 4, validName(parts[2]),
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(String(parts[3]))
                    else { throw ParseError(description: "line \(number + 1): bad TYPE line: \(line)") }
                    types[String(parts[2])] = String(parts[3])
                }
                continue
            }
            var rest = Substring(line)
            let nameEnd = rest.firstIndex(where: { $0 == "{" || $0 == " " }) ?? rest.endIndex
            let name = rest[..<nameEnd]
            guard validName(name) else { throw ParseError(description: "line \(number + 1): bad metric name: \(line)") }
            rest = rest[nameEnd...]
            var labels: [String: String] = [:]
            if rest.hasPrefix("{") {
                rest = rest.dropFirst()
                while !rest.hasPrefix("}") {
                    guard let equals = rest.firstIndex(of: "="), validName(rest[..<equals]) else {
                        throw ParseError(description: "line \(number + 1): bad label: \(line)")
                    }
                    let key = String(rest[..<equals])
                    rest = rest[rest.index(after: equals)...]
                    guard rest.hasPrefix("\"") else { throw ParseError(description: "line \(number + 1): unquoted label value: \(line)") }
                    rest = rest.dropFirst()
                    var value = ""
                    while let character = rest.first, character != "\"" {
                        if character == "\\" {
                            rest = rest.dropFirst()
                            guard let escaped = rest.first else { break }
                            value.append(escaped == "n" ? "\n" : escaped)
                        } else {
                            value.append(character)
                        }
                        rest = rest.dropFirst()
                    }
                    guard rest.hasPrefix("\"") else { throw ParseError(description: "line \(number + 1): unterminated label value") }
                    rest = rest.dropFirst()
                    labels[key] = value
                    if rest.hasPrefix(",") { rest = rest.dropFirst() }
                }
                rest = rest.dropFirst()
            }
            let fields = rest.split(separator: " ")
            guard (1...2).contains(fields.count) else { throw ParseError(description: "line \(number + 1): bad sample: \(line)") }
            let text = String(fields[0])
            guard let value = Double(text) ?? (text == "+Inf" ? .infinity : text == "-Inf" ? -.infinity : text == "NaN" ? .nan : nil) else {
                throw ParseError(description: "line \(number + 1): bad value: \(line)")
            }
            samples.append(Sample(name: String(name), labels: labels, value: value))
        }
        // Every histogram has ordered buckets ending in +Inf, and a count equal to it.
        for (family, type) in types where type == "histogram" {
            let buckets = samples.filter { $0.name == family + "_bucket" }
            let series = Set(buckets.map { $0.labels.filter { $0.key != "le" } })
            for labels in series {
                let ours = buckets.filter { $0.labels.filter { $0.key != "le" } == labels }
                guard let last = ours.last, last.labels["le"] == "+Inf" else { throw ParseError(description: "\(family): no +Inf bucket") }
                guard zip(ours, ours.dropFirst()).allSatisfy({ $0.value <= $1.value }) else {
                    throw ParseError(description: "\(family): buckets not cumulative")
                }
                let count = samples.first { $0.name == family + "_count" && $0.labels == labels }
                guard count?.value == last.value else { throw ParseError(description: "\(family): _count differs from +Inf bucket") }
            }
        }
    }

    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }?.value
    }
}

@Suite("Prometheus metrics", .timeLimit(.minutes(2)))
struct MetricsTests {
    func scrape(_ pipeline: Pipeline) async throws -> PrometheusText {
        let text = try await pipeline.api { client in
            let response = try await client.executeRequest(uri: "/metrics", method: .get, headers: [:], body: nil)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            return String(buffer: response.body)
        }
        return try PrometheusText(text)
    }

    /// Web's own metrics (beat's and worker's are served by their processes: `ProgramTests`).
    @Test("web's GET /metrics is valid Prometheus text, needs no token, and shows schedules, queues and requests")
    func counters() async throws {
        try await Pipeline.run { pipeline in
            pipeline.receiver.script("metered", [503])
            _ = try await pipeline.createSchedule(
                #"{"endpoint":"\#(pipeline.receiver.url("metered"))","next_send_at":"\#(Timestamp.format(Date()))"}"#)
            _ = try await pipeline.createSchedule(#"{"endpoint":"\#(pipeline.receiver.url("metered"))","enabled":false}"#)
            #expect(try await pipeline.receiver.waitFor("metered", count: 2, timeout: 15).count == 2)
            let consuming = try await pipeline.eventually(timeout: 10) {
                try await scrape(pipeline).value("scheduler_queue_consumers", ["queue": "scheduler.deliveries"]) == 1
            }
            #expect(consuming, "the worker process is the queue's one consumer")

            // The figures are a reading a few seconds old at most.
            let counted = try await pipeline.eventually(timeout: 10) {
                let text = try await scrape(pipeline)
                return text.value("scheduler_schedules", ["state": "enabled"]) == 1
                    && text.value("scheduler_schedules", ["state": "disabled"]) == 1
            }
            #expect(counted, "one enabled schedule and one disabled")
            let after = try await scrape(pipeline)
            #expect(after.value("scheduler_queue_ready_messages", ["queue": "scheduler.deliveries"]) != nil)
            #expect(after.value("scheduler_queue_ready_messages", ["queue": "scheduler.dead-letters"]) == 0)
            #expect(after.samples.contains { $0.name.hasPrefix("hb_request") }, "API requests are counted")
            // No schedule or delivery id is ever a label.
            let labelValues = after.samples.flatMap { $0.labels.values }
            #expect(!labelValues.contains { UUID(uuidString: $0) != nil })
        }
    }

    @Test("the text reader refuses what Prometheus would")
    func parser() {
        #expect(throws: PrometheusText.ParseError.self) { try PrometheusText("9bad_name 1") }
        #expect(throws: PrometheusText.ParseError.self) { try PrometheusText("name{label=unquoted} 1") }
        #expect(throws: PrometheusText.ParseError.self) { try PrometheusText("name one") }
        #expect(throws: PrometheusText.ParseError.self) {
            try PrometheusText("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1")
        }
        #expect(throws: Never.self) {
            try PrometheusText("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 3.5")
        }
    }
}

@Suite("Go Metrics API push", .timeLimit(.minutes(2)))
struct MetricsPushTests {
    @Test("with METRICS_URL set, creates and deletes are pushed, and POST /api/metrics/ pushes the totals")
    func push() async throws {
        try await Pipeline.run(beat: false, worker: false) { pipeline in
            // The receiver plays the Go Metrics API at <METRICS_URL>/metrics/.
            let environment = ["METRICS_URL": pipeline.receiver.url("gm"), "METRICS_AUTH_TOKEN": "metrics-token"]
            let configured = try Pipeline.Configured(pipeline, environment)
            let id = try await configured.createSchedule(#"{"endpoint":"http://127.0.0.1:9/x"}"#)
            let created = try await pipeline.receiver.waitFor("gm/metrics", count: 1, timeout: 10)
            #expect(created.first?.body == #"{"schedules.created.sum":1}"#)
            #expect(created.first?.header("Authorization") == "Bearer metrics-token")

            #expect(try await configured.send(.delete, "/api/v1/schedule/\(id.uuidString.lowercased())/").status == .noContent)
            _ = try await configured.createSchedule(#"{"endpoint":"http://127.0.0.1:9/x","enabled":false}"#)
            let fired = try await configured.send(.post, "/api/metrics/")
            #expect(fired.status == .created)
            let all = try await pipeline.receiver.waitFor("gm/metrics", count: 4, timeout: 10).map(\.body)
            #expect(all.contains(#"{"schedules.deleted.sum":1}"#))
            #expect(all.contains(#"{"schedules.total.last":1,"schedules.enabled.last":0}"#))
        }
    }
}
