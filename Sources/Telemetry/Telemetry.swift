import Foundation
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Synchronization

/// The process's metrics: swift-metrics backed by one Prometheus registry, bootstrapped
/// once (by each program's main, or the first test that needs it).
public enum Telemetry {
    private static let shared = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Bootstraps swift-metrics with Prometheus (once; later calls return the same registry).
    @discardableResult
    public static func bootstrap() -> PrometheusCollectorRegistry {
        shared.withLock { registry in
            if let registry { return registry }
            let created = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: created)
            // Seconds, from a millisecond to a minute: delivery durations and lateness.
            let buckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
            factory.defaultValueHistogramBuckets = buckets
            factory.defaultDurationHistogramBuckets = buckets.map { .milliseconds(Int64($0 * 1000)) }
            MetricsSystem.bootstrap(factory)
            registry = created
            return created
        }
    }

    /// The registry, if bootstrapped.
    public static var registry: PrometheusCollectorRegistry? { shared.withLock { $0 } }

    /// The Prometheus text format of everything recorded, as `promtool check metrics` wants
    /// it: a `# HELP` line for each metric (swift-metrics has no place for one), and counters
    /// named with `_total` (Hummingbird's `hb_requests` is `hb_requests_total`).
    public static func text() -> String {
        var buffer: [UInt8] = []
        registry?.emit(into: &buffer)
        return exposition(String(decoding: buffer, as: UTF8.self))
    }

    /// `raw` (swift-prometheus's text) with help lines and counters' `_total`.
    static func exposition(_ raw: String) -> String {
        var out = ""
        out.reserveCapacity(raw.utf8.count + 4096)
        var renamed: (from: Substring, to: String)?
        for line in raw.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                guard parts.count == 4 else {
                    out += line + "\n"
                    continue
                }
                let (name, kind) = (parts[2], parts[3])
                let exposed = kind == "counter" && !name.hasSuffix("_total") ? name + "_total" : String(name)
                renamed = exposed == name ? nil : (name, exposed)
                out += "# HELP \(exposed) \(help[exposed] ?? "See the README's metrics table.")\n# TYPE \(exposed) \(kind)\n"
            } else if let (from, to) = renamed, line.hasPrefix(from),
                line.dropFirst(from.count).first.map({ $0 == "{" || $0 == " " }) == true
            {
                out += to + line.dropFirst(from.count) + "\n"
            } else {
                out += line + "\n"
            }
        }
        return out
    }

    /// Each metric's `# HELP` text (the README's metrics table says more).
    static let help: [String: String] = [
        "scheduler_schedules": "Schedules stored, by state (enabled, disabled).",
        "scheduler_queue_ready_messages": "Messages ready in each queue of the delivery topology, at the last reading.",
        "scheduler_queue_consumers": "Consumers of each queue of the delivery topology, at the last reading.",
        "scheduler_quota_refusals_total": "Writes refused by a quota, by quota.",
        "scheduler_http_connections_closed_total": "Connections web closed for a late request head or idleness, by reason.",
        "hb_requests_total": "API requests, by route, method and status.",
        "hb_request_errors_total": "API requests that ended in an error, by route, method and error.",
        "http_server_active_requests": "API requests being answered now, by method.",
        "http_server_request_duration": "Seconds to answer an API request, by route, method and status.",
        "scheduler_occurrences_published_total": "Delivery jobs beat published (confirmed by the broker).",
        "scheduler_beat_last_run_timestamp_seconds": "Unix time of beat's last finished round.",
        "scheduler_beat_lag_seconds": "How overdue the oldest occurrence of beat's last round was.",
        "scheduler_beat_lead_seconds": "How long before the next due time beat claims it.",
        "scheduler_beat_round_duration_seconds": "Seconds beat's rounds take.",
        "scheduler_schedules_quarantined_total": "Schedules beat disabled because their next run could not be computed.",
        "scheduler_occurrences_missed_total": "Occurrences recorded as missed: due longer ago than their schedule's catch-up window.",
        "scheduler_deliveries_total": "Jobs settled by the worker, by outcome and status class.",
        "scheduler_delivery_attempts_total": "POSTs the worker made.",
        "scheduler_targets_read_ahead_total": "POSTs sent at their due time with the target read while the job was held.",
        "scheduler_delivery_duration_seconds": "Seconds from a POST to its answer.",
        "scheduler_delivery_lateness_seconds": "Seconds from an occurrence's due time to its first POST leaving.",
        "scheduler_schedules_paused_total": "Schedules paused because their failures would pile up, by reason.",
        "scheduler_receiver_state": "Receivers this worker knows, by circuit state.",
        "scheduler_receiver_transitions_total": "Circuit changes of receivers, by the state entered.",
        "scheduler_receiver_waiting_jobs": "Jobs held back for their receiver, waiting in the worker or parked.",
        "scheduler_jobs_parked_total": "Jobs parked in the broker for their receiver, by reason.",
    ]

    /// `GET /metrics` in the Prometheus text format.
    public static func response() -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text())))
    }
}

/// Serves `GET /metrics`, `/livez` and `/readyz` (`Readiness.shared`) on a port of its own
/// (beat and worker). A port that cannot be bound is logged and the program carries on
/// without it.
public struct MetricsServer: Service {
    let host: String
    let port: Int
    let logger: Logger

    public init(host: String, port: Int, logger: Logger) {
        self.host = host
        self.port = port
        self.logger = logger
    }

    public func run() async throws {
        guard port > 0 else {
            try? await gracefulShutdown()
            return
        }
        let router = Router()
        router.get("metrics") { _, _ in Telemetry.response() }
        router.get("livez") { _, _ in Readiness.live() }
        router.get("readyz") { _, _ in Readiness.shared.response() }
        var quiet = logger
        quiet.logLevel = .warning
        let app = Application(router: router, configuration: .init(address: .hostname(host, port: port)), logger: quiet)
        do {
            logger.info("metrics on /metrics", metadata: ["port": "\(port)"])
            try await app.runService(gracefulShutdownSignals: [])
        } catch {
            logger.error("cannot serve metrics; carrying on without them", metadata: ["port": "\(port)", "error": "\(error)"])
            try? await gracefulShutdown()
        }
    }
}
