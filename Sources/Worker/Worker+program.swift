import Logging
import Postgres
import SchedulerCore
import SchedulerStore
import ServiceLifecycle
import Telemetry
import UnixSignals

extension Worker {
    /// scheduler-worker as one `ServiceGroup`: its pool, its metrics server and the worker.
    /// Services stop in reverse order: the worker finishes, then the pool closes.
    public static func program(
        configuration: Configuration, logger: Logger, signals: [UnixSignal] = [.sigterm, .sigint]
    ) -> ServiceGroup {
        let pool = PostgresPool(
            url: configuration.databaseURL, size: 4, statementTimeout: configuration.databaseStatementTimeout,
            settings: DeliveryStore.workerSettings, logger: logger)
        let metrics = MetricsServer(host: configuration.host, port: configuration.workerMetricsPort, logger: logger)
        let worker = Worker(configuration: configuration, pool: pool, logger: logger)
        return ServiceGroup(services: [pool, metrics, worker], gracefulShutdownSignals: signals, logger: logger)
    }
}
