import Logging
import Postgres
import SchedulerCore
import SchedulerStore
import ServiceLifecycle
import Telemetry
import UnixSignals

extension Beat {
    /// scheduler-beat as one `ServiceGroup`: its pool, its metrics server, beat and the
    /// delivery history's upkeep.
    /// Services stop in reverse order: beat finishes, then the pool closes.
    public static func program(
        configuration: Configuration, logger: Logger, signals: [UnixSignal] = [.sigterm, .sigint]
    ) -> ServiceGroup {
        let pool = PostgresPool(
            url: configuration.databaseURL, size: 4, statementTimeout: configuration.databaseStatementTimeout, logger: logger)
        let metrics = MetricsServer(host: configuration.host, port: configuration.beatMetricsPort, logger: logger)
        let beat = Beat(configuration: configuration, pool: pool, logger: logger)
        let history = HistoryKeeper(
            history: DeliveryHistory(pool: pool, retentionDays: configuration.deliveryRetentionDays),
            receivers: ReceiverStore(pool: pool), receiverRetentionDays: configuration.receiverRetentionDays, owners: pool, logger: logger)
        return ServiceGroup(services: [pool, metrics, beat, history], gracefulShutdownSignals: signals, logger: logger)
    }
}
