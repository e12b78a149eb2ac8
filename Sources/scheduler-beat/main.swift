import Beat
import Logging
import Postgres
import SchedulerCore
import ServiceLifecycle
import Telemetry

let configuration = Configuration.loadOrExit(program: "scheduler-beat")
LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
Telemetry.bootstrap()
var logger = Logger(label: "scheduler-beat")
logger.logLevel = configuration.debug ? .debug : .info
let pool = PostgresPool(
    url: configuration.databaseURL, size: 4, statementTimeout: configuration.databaseStatementTimeout, logger: logger)
let service = Beat(configuration: configuration, pool: pool, logger: logger)
let metrics = MetricsServer(host: configuration.host, port: configuration.beatMetricsPort, logger: logger)
let group = ServiceGroup(services: [service, metrics], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
try await group.run()
pool.close()
