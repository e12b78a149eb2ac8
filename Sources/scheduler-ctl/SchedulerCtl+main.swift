import ArgumentParser
import Ctl

/// ArgumentParser's own entry point: it parses, runs the command, and prints errors and
/// usage the way every ArgumentParser tool does.
@main
extension SchedulerCtl {}
