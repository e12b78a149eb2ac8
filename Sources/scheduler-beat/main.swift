import Beat
import Telemetry

let (configuration, logger) = Program.prepare("scheduler-beat")
try await Beat.program(configuration: configuration, logger: logger).run()
