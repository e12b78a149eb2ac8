import Telemetry
import Worker

let (configuration, logger) = Program.prepare("scheduler-worker")
try await Worker.program(configuration: configuration, logger: logger).run()
