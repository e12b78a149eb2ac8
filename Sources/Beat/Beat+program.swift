import Logging
import Postgres
import SchedulerCore
import ServiceLifecycle
import Telemetry
import UnixSignals

extension Beat {
    /// scheduler-beat as one `ServiceGroup`: its pool, its metrics server and beat.
    /// Services stop in reverse order: beat finishes, then the pool closes.
    public static func program(
        configuration: Configuration, logger: Logger, signals: [UnixSignal] = [.sigterm, .sigint]
    ) -> ServiceGroup {
        let pool = PostgresPool(
            url: configuration.databaseURL, size: 4, statementTimeout: configuration.databaseStatementTimeout, logger: logger)
        let metrics = MetricsServer(host: configuration.host, port: configuration.beatMetricsPort, logger: logger)
        let beat = Beat(configuration: configuration, pool: pool, logger: logger)
        return ServiceGroup(services: [pool, metrics, beat], gracefulShutdownSignals: signals, logger: logger)
    }
}
