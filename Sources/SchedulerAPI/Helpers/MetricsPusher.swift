import Foundation
import HTTPClient
import Logging
import SchedulerCore

/// The original's metrics push: `POST <METRICS_URL>/metrics/` with `{"key": value}` and
/// `Authorization: Bearer <METRICS_AUTH_TOKEN>` (the Go Metrics API's client), sent in the
/// background so it never slows a request; a failure is logged, not retried.
struct MetricsPusher: Sendable {
    let url: String?
    let token: String?
    let logger: Logger

    init(configuration: Configuration, logger: Logger) {
        url = configuration.metricsURL.map { ($0.hasSuffix("/") ? String($0.dropLast()) : $0) + "/metrics/" }
        token = configuration.metricsAuthToken
        self.logger = logger
    }

    var isEnabled: Bool { url != nil }

    func push(_ values: [(String, Int)]) {
        guard let url else { return }
        var object = JSONObject()
        for (key, value) in values { object[key] = .int(value) }
        let body = JSONValue.object(object).serializedBytes
        let headers = ["Content-Type: application/json"] + (token.map { ["Authorization: Bearer \($0)"] } ?? [])
        let logger = logger
        Task {
            do {
                let status = try await SimplePost.send(url: url, headers: headers, body: body, timeout: 10)
                if !(200...299).contains(status) {
                    logger.warning("metrics push refused", metadata: ["status": "\(status)", "url": "\(url)"])
                }
            } catch {
                logger.warning("metrics push failed", metadata: ["error": "\(error)", "url": "\(url)"])
            }
        }
    }
}
