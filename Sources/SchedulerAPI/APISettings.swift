import SchedulerCore

/// What the handlers need to know of the configuration.
struct APISettings: Sendable {
    let pageSize: Int
    let maxPageSize: Int
    let useSSL: Bool

    init(_ configuration: Configuration) {
        pageSize = configuration.pageSize
        maxPageSize = configuration.maxPageSize
        useSSL = configuration.useSSL
    }
}
