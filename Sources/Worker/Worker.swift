import Logging
import Postgres
import SchedulerCore
import ServiceLifecycle

/// scheduler-worker: consumes delivery jobs and POSTs them (see `DeliveryLoop`).
public final class Worker: Service, Sendable {
    private let loop: DeliveryLoop

    public init(configuration: Configuration, pool: PostgresPool, logger: Logger) {
        loop = DeliveryLoop(
            settings: .init(
                brokerURL: configuration.brokerURL, prefetch: configuration.workerPrefetch, heldWindow: configuration.workerHeldWindow,
                heartbeat: configuration.brokerHeartbeat, httpThreads: configuration.workerHTTPThreads,
                databaseURL: configuration.databaseURL,
                machine: .init(
                    policy: configuration.retryPolicy, timeout: configuration.deliveryTimeout,
                    connectTimeout: configuration.deliveryConnectTimeout,
                    signer: configuration.signingSecret.map(WebhookSigner.init(secret:)),
                    maxRedeliveries: configuration.maxRedeliveries,
                    maximumPayloadBytes: configuration.scheduleLimits.maximumPayloadBytes,
                    receivers: .init(
                        maximumConcurrency: configuration.receiverConcurrency, openAfter: configuration.breakerOpenAfter,
                        minimumFailures: configuration.breakerMinimumFailures, probeInterval: configuration.breakerProbeInterval,
                        maximumPause: configuration.receiverMaximumPause),
                    egress: configuration.scheduleLimits.egress),
                alertURL: configuration.receiverAlertURL, pauseAfterFailures: configuration.pauseAfterFailures,
                deadLettersPerTenant: configuration.deadLettersPerTenant, hookAuthToken: configuration.hookAuthToken),
            pool: pool, logger: logger)
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await self.loop.run()
        } onGracefulShutdown: {
            self.loop.stop()
        }
    }
}
