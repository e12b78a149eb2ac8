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
                brokerURL: configuration.brokerURL, prefetch: configuration.workerPrefetch,
                timeout: configuration.deliveryTimeout, policy: configuration.retryPolicy,
                signer: configuration.signingSecret.map(WebhookSigner.init(secret:)), heartbeat: configuration.brokerHeartbeat,
                maxRedeliveries: configuration.maxRedeliveries,
                maximumPayloadBytes: configuration.scheduleLimits.maximumPayloadBytes),
            pool: pool, logger: logger)
    }

    public func run() async throws {
        loop.start()
        await withGracefulShutdownHandler {
            await self.loop.finished()
        } onGracefulShutdown: {
            self.loop.stop()
        }
    }
}
