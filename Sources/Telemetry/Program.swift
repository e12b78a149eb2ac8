import Logging
import SchedulerCore

/// What every program does before it builds its services: read the configuration (or
/// stop with one clear line and exit code 78), then set up logging and metrics.
public enum Program {
    public static func prepare(_ name: String) -> (Configuration, Logger) {
        let configuration = Configuration.loadOrExit(program: name)
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        Telemetry.bootstrap()
        var logger = Logger(label: name)
        logger.logLevel = configuration.debug ? .debug : .info
        return (configuration, logger)
    }
}
