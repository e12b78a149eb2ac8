import SchedulerCore

/// What the handlers need to know of the configuration.
struct APISettings: Sendable {
    let pageSize: Int
    let maxPageSize: Int
    let useSSL: Bool
    let hookAuthToken: String?
    let scheduleLimits: ScheduleLimits
    let hosts: HostPolicy

    init(_ configuration: Configuration) {
        hookAuthToken = configuration.hookAuthToken
        pageSize = configuration.pageSize
        maxPageSize = configuration.maxPageSize
        useSSL = configuration.useSSL
        scheduleLimits = configuration.scheduleLimits
        hosts = configuration.hostPolicy
    }
}
