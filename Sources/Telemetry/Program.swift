import Logging
import SchedulerCore

/// What every program does before it builds its services: read the configuration (or
/// stop with one clear line and exit code 78), then set up logging (`LOG_FORMAT`,
/// `LOG_LEVEL`) and metrics.
public enum Program {
    public static func prepare(_ name: String) -> (Configuration, Logger) {
        let configuration = Configuration.loadOrExit(program: name)
        let level = Logger.Level(rawValue: configuration.logLevel.rawValue) ?? .info
        switch configuration.logFormat {
        case .text:
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
        case .json:
            LoggingSystem.bootstrap { label in
                var handler = JSONLogHandler(label: label)
                handler.logLevel = level
                return handler
            }
        }
        Telemetry.bootstrap()
        var logger = Logger(label: name)
        logger.logLevel = level
        return (configuration, logger)
    }
}
