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

    /// The Prometheus text format of everything recorded.
    public static func text() -> String {
        var buffer: [UInt8] = []
        registry?.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }

    /// `GET /metrics` in the Prometheus text format.
    public static func response() -> Response {
        Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text())))
    }
}

/// Serves `GET /metrics` on a port of its own (beat and worker). A port that cannot be
/// bound is logged and the program carries on without it.
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
