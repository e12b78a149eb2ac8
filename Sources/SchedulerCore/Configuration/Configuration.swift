import Foundation

/// The service's settings, from the environment. Names follow the original Seed
/// Scheduler; the new ones have defaults. See the README's configuration table.
public struct Configuration: Sendable, Equatable {
    public var databaseURL: String
    public var brokerURL: String
    public var secretKey: String
    public var debug: Bool
    /// `LOG_FORMAT`: text lines, or one JSON object a line.
    public var logFormat: LogFormat
    /// `LOG_LEVEL`: the least severe level logged (`DEBUG=true` alone means `debug`).
    public var logLevel: LogLevel
    public var useSSL: Bool
    public var hookAuthToken: String?
    public var metricsURL: String?
    public var metricsAuthToken: String?
    public var sentryDSN: String?
    public var host: String
    public var port: Int
    public var pageSize: Int
    public var maxPageSize: Int
    public var databasePoolSize: Int
    public var maxBodyBytes: Int
    /// Seconds a receiver has to answer a delivery, from the moment it is sent.
    public var deliveryTimeout: Double
    /// Seconds to connect to a receiver (TCP and TLS), counted apart from the answer.
    public var deliveryConnectTimeout: Double
    /// Requests in flight per receiver (scheme, host and port), at most.
    public var receiverConcurrency: Int
    /// Circuit breaker: seconds of nothing but failures (and at least `breakerMinimumFailures`
    /// failed attempts) before a receiver is opened; seconds between probes of an open one.
    public var breakerOpenAfter: Double
    public var breakerMinimumFailures: Int
    public var breakerProbeInterval: Double
    /// The longest pause (seconds) a receiver's `Retry-After` may ask for.
    public var receiverMaximumPause: Double
    /// An operator's webhook told when a receiver's circuit opens or closes.
    public var receiverAlertURL: String?
    public var retryPolicy: RetryPolicy
    /// Jobs a worker holds unacknowledged (and POSTs at once), at most.
    public var workerPrefetch: Int
    /// Jobs published ahead of their time a worker holds unacknowledged until then, at most
    /// (the held queue's prefetch): enough for a burst to be in the worker's hands at its
    /// instant, not read from the broker after it.
    public var workerHeldWindow: Int
    /// Threads a worker sends its POSTs on (each with its own kept-alive connections).
    public var workerHTTPThreads: Int
    /// Standard Webhooks signing secret (`whsec_<base64>`, or any other text used as is).
    public var signingSecret: String?
    /// Schedules beat claims per transaction.
    public var beatBatchSize: Int
    /// Seconds before a beat publishes a job another beat recorded but did not publish.
    public var beatPublishLease: Int
    /// Seconds before its due time beat claims and publishes an occurrence; the worker holds
    /// the job and reads and POSTs it at the due time (0: at the due time, as before). The
    /// default, 1.5 s, lets beat publish a burst of 10,000 before its instant on two cores,
    /// and keeps beat's work for occurrences due on whole seconds half a second away from
    /// the due instants of the others.
    public var beatLookahead: Double
    /// Occurrences a second beat counts on claiming and publishing (`BEAT_PACE`, default
    /// 5,000): when many are due within one second, beat starts that long before the
    /// lookahead to have them all published by their instant (at most 10 s ahead).
    public var beatPace: Int
    /// Days delivery records are kept at least (whole weeks are dropped, so up to 7 more); 0 keeps all.
    public var deliveryRetentionDays: Int
    /// The occurrences one backfill may queue (`BACKFILL_MAX_OCCURRENCES`).
    public var backfillLimit: Int
    /// Ports of beat's and worker's `/metrics` (0: none).
    public var beatMetricsPort: Int
    public var workerMetricsPort: Int
    /// Bounds on schedules: intervals, how far ahead `next_send_at` may be, payload size.
    public var scheduleLimits: ScheduleLimits
    /// AMQP heartbeat of every connection, in seconds (0: none).
    public var brokerHeartbeat: Int
    /// Times a job may come back from a worker that stopped without an outcome before the
    /// next worker dead-letters it as poison.
    public var maxRedeliveries: Int
    /// Seconds a statement may run (server side) and wait for its answer (client side).
    public var databaseStatementTimeout: Double
    /// Seconds an API request waits for a free database connection before a 503.
    public var databasePoolTimeout: Double
    /// The `Host` headers web answers and where its absolute URLs point (`ALLOWED_HOSTS`, `PUBLIC_URL`).
    public var hostPolicy: HostPolicy
    /// Seconds a request's headers may take to arrive (`HTTP_HEADER_TIMEOUT`).
    public var httpHeaderTimeout: Int
    /// Seconds a kept-alive connection may sit without a request (`HTTP_IDLE_TIMEOUT`).
    public var httpIdleTimeout: Int
    /// Connections scheduler-web holds open at once, at most (`HTTP_MAX_CONNECTIONS`).
    public var httpMaxConnections: Int
    /// Failed authentications a client address may make in a minute before its requests
    /// with credentials are answered 429 without a look-up (`AUTH_FAILURES_PER_MINUTE`).
    public var authFailuresPerMinute: Int
    /// Proxies whose `X-Forwarded-For` names the client (`TRUSTED_PROXIES`: CIDRs and addresses).
    public var trustedProxies: [EgressPolicy.Range]
    /// A schedule whose last this many occurrences failed for good is paused (0: never).
    public var pauseAfterFailures: Int
    /// Dead letters a tenant may hold before their failing schedules are paused (0: no bound).
    public var deadLettersPerTenant: Int
    /// Days a receiver unseen by every worker is kept in `receivers`.
    public var receiverRetentionDays: Int
    /// Normal users' and admins' quotas (`QUOTA_*`, `ADMIN_QUOTA_*`).
    public var userQuota: Quota
    public var adminQuota: Quota

    public static let defaultDatabaseURL = "postgres://postgres@localhost:5432/seed_scheduler"
    public static let defaultBrokerURL = "amqp://guest:guest@localhost:5672/%2f"

    /// `requireSecret` false is for tools that issue no tokens (`scheduler-ctl queues`, `dlq`).
    public init(
        environment: [String: String] = ProcessInfo.processInfo.environment, requireSecret: Bool = true
    ) throws(ConfigurationError) {
        let reader = Reader(environment: environment)
        databaseURL = try reader.url("SCHEDULER_DATABASE", default: Self.defaultDatabaseURL, schemes: ["postgres", "postgresql"])
        brokerURL = try reader.url("BROKER_URL", default: Self.defaultBrokerURL, schemes: ["amqp", "amqps"])
        let secret = reader.string("SECRET_KEY") ?? ""
        guard !secret.isEmpty || !requireSecret else {
            throw ConfigurationError("SECRET_KEY is not set: set it to a long random string (API tokens are derived from it)")
        }
        guard secret.utf8.count >= 16 || !requireSecret else {
            throw ConfigurationError("SECRET_KEY is too short: use at least 16 characters (API tokens are derived from it)")
        }
        secretKey = secret
        debug = try reader.bool("DEBUG", default: false)
        let format = reader.string("LOG_FORMAT") ?? "text"
        guard let logFormat = LogFormat(rawValue: format.lowercased()) else {
            throw ConfigurationError("LOG_FORMAT must be text or json, got '\(format)'")
        }
        self.logFormat = logFormat
        let level = reader.string("LOG_LEVEL") ?? (debug ? "debug" : "info")
        guard let logLevel = LogLevel(rawValue: level.lowercased()) else {
            let names = LogLevel.allCases.map(\.rawValue).joined(separator: ", ")
            throw ConfigurationError("LOG_LEVEL must be one of \(names), got '\(level)'")
        }
        self.logLevel = logLevel
        useSSL = try reader.bool("USE_SSL", default: false)
        hookAuthToken = reader.string("HOOK_AUTH_TOKEN")
        metricsURL = try reader.optionalURL("METRICS_URL", schemes: ["http", "https"])
        metricsAuthToken = reader.string("METRICS_AUTH_TOKEN")
        sentryDSN = reader.string("SCHEDULER_SENTRY_DSN")
        host = reader.string("HOST") ?? "0.0.0.0"
        port = try reader.int("PORT", default: 8000, range: 1...65535)
        maxPageSize = try reader.int("MAX_PAGE_SIZE", default: 1000, range: 1...100_000)
        pageSize = try reader.int("PAGE_SIZE", default: 100, range: 1...maxPageSize)
        databasePoolSize = try reader.int("DATABASE_POOL_SIZE", default: 8, range: 1...200)
        maxBodyBytes = try reader.int("MAX_BODY_BYTES", default: 1_048_576, range: 1024...67_108_864)
        deliveryTimeout = Double(try reader.int("DELIVERY_TIMEOUT", default: 30, range: 1...3600))
        deliveryConnectTimeout = Double(try reader.int("DELIVERY_CONNECT_TIMEOUT", default: 10, range: 1...600))
        receiverConcurrency = try reader.int("RECEIVER_CONCURRENCY", default: 64, range: 1...1000)
        breakerOpenAfter = Double(try reader.int("BREAKER_OPEN_AFTER", default: 60, range: 1...86_400))
        breakerMinimumFailures = try reader.int("BREAKER_MIN_FAILURES", default: 5, range: 1...10_000)
        breakerProbeInterval = Double(try reader.int("BREAKER_PROBE_INTERVAL", default: 30, range: 1...3600))
        receiverMaximumPause = Double(try reader.int("RECEIVER_MAX_PAUSE", default: 300, range: 1...86_400))
        receiverAlertURL = reader.string("RECEIVER_ALERT_URL").flatMap { $0.isEmpty ? nil : $0 }
        if let url = receiverAlertURL, !ScheduleValidation.isHTTPURL(url) {
            throw ConfigurationError("RECEIVER_ALERT_URL must be an http(s) URL, got '\(url)'")
        }
        let attempts = try reader.int("DELIVERY_ATTEMPTS", default: 6, range: 1...100)
        let delaysText = reader.string("RETRY_DELAYS") ?? "5s,30s,5m,30m"
        guard let delays = RetryPolicy.parseDelays(delaysText) else {
            throw ConfigurationError(
                "RETRY_DELAYS must be a comma-separated list of durations like 5s,30s,5m,30m (units ms, s, m, h; at most 24h), got '\(delaysText)'"
            )
        }
        retryPolicy = RetryPolicy(maxAttempts: attempts, delays: delays)
        workerPrefetch = try reader.int("WORKER_PREFETCH", default: 1000, range: 1...10_000)
        // AMQP's prefetch count is 16 bits.
        workerHeldWindow = try reader.int("WORKER_HELD_WINDOW", default: 60_000, range: 1...65_535)
        workerHTTPThreads = try reader.int("WORKER_HTTP_THREADS", default: 2, range: 1...64)
        signingSecret = reader.string("SIGNING_SECRET")
        beatBatchSize = try reader.int("BEAT_BATCH_SIZE", default: 2000, range: 1...50_000)
        beatPublishLease = try reader.int("BEAT_PUBLISH_LEASE", default: 60, range: 2...3600)
        let lookahead =
            reader.string("BEAT_LOOKAHEAD").map { $0.trimmingCharacters(in: .whitespaces) == "0" } == true
            ? 0 : try reader.duration("BEAT_LOOKAHEAD", default: 1_500_000)
        guard lookahead <= 10_000_000 else {
            throw ConfigurationError("BEAT_LOOKAHEAD must be at most 10s, got '\(reader.string("BEAT_LOOKAHEAD") ?? "")'")
        }
        beatLookahead = Double(lookahead) / 1_000_000
        beatPace = try reader.int("BEAT_PACE", default: 5000, range: 1...1_000_000)
        deliveryRetentionDays = try reader.int("DELIVERY_RETENTION_DAYS", default: 30, range: 0...36_500)
        backfillLimit = try reader.int("BACKFILL_MAX_OCCURRENCES", default: 1_000, range: 1...100_000)
        beatMetricsPort = try reader.int("BEAT_METRICS_PORT", default: 9101, range: 0...65535)
        workerMetricsPort = try reader.int("WORKER_METRICS_PORT", default: 9102, range: 0...65535)
        let standard = ScheduleLimits.standard
        let minimumInterval = try reader.duration("SCHEDULE_MIN_INTERVAL", default: standard.minimumInterval)
        let maximumInterval = try reader.duration("SCHEDULE_MAX_INTERVAL", default: standard.maximumInterval)
        guard minimumInterval <= maximumInterval else {
            throw ConfigurationError("SCHEDULE_MIN_INTERVAL must not be longer than SCHEDULE_MAX_INTERVAL")
        }
        scheduleLimits = ScheduleLimits(
            minimumInterval: minimumInterval, maximumInterval: maximumInterval,
            horizon: reader.string("SCHEDULE_MAX_HORIZON") == nil
                ? standard.horizon : try reader.duration("SCHEDULE_MAX_HORIZON", default: 0),
            maximumPayloadBytes: try reader.int(
                "MAX_PAYLOAD_BYTES", default: standard.maximumPayloadBytes, range: 2...min(maxBodyBytes, 16_777_216)))
        let allow = reader.string("EGRESS_ALLOW") ?? ""
        guard let egress = EgressPolicy(allow: allow) else {
            throw ConfigurationError(
                "EGRESS_ALLOW must be a comma-separated list of CIDRs (10.1.0.0/16, fd00::/8), addresses and host names, got '\(allow)'")
        }
        scheduleLimits.egress = egress
        brokerHeartbeat = try reader.int("BROKER_HEARTBEAT", default: 10, range: 0...600)
        maxRedeliveries = try reader.int("MAX_REDELIVERIES", default: 5, range: 1...(DeliveryLimits.brokerDeliveryLimit - 1))
        databaseStatementTimeout = Double(try reader.int("DATABASE_STATEMENT_TIMEOUT", default: 30, range: 1...86_400))
        databasePoolTimeout = Double(try reader.int("DATABASE_POOL_TIMEOUT", default: 5, range: 1...600))
        guard let hosts = HostPolicy(allowedHosts: reader.string("ALLOWED_HOSTS"), publicURL: reader.string("PUBLIC_URL")) else {
            throw ConfigurationError(
                "ALLOWED_HOSTS must be comma-separated host names (example.org, .example.org, *) and PUBLIC_URL an http(s) URL without query, got '\(reader.string("ALLOWED_HOSTS") ?? "")' and '\(reader.string("PUBLIC_URL") ?? "")'"
            )
        }
        hostPolicy = hosts
        httpHeaderTimeout = try reader.int("HTTP_HEADER_TIMEOUT", default: 10, range: 1...600)
        httpIdleTimeout = try reader.int("HTTP_IDLE_TIMEOUT", default: 60, range: 1...3600)
        httpMaxConnections = try reader.int("HTTP_MAX_CONNECTIONS", default: 4096, range: 16...1_000_000)
        authFailuresPerMinute = try reader.int("AUTH_FAILURES_PER_MINUTE", default: 60, range: 1...1_000_000)
        let proxies = (reader.string("TRUSTED_PROXIES") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        trustedProxies = proxies.compactMap { EgressPolicy.Range(cidr: $0, name: "trusted proxy") }
        pauseAfterFailures = try reader.int("SCHEDULE_PAUSE_AFTER_FAILURES", default: 10, range: 0...10_000)
        deadLettersPerTenant = try reader.int("DEAD_LETTERS_PER_TENANT", default: 10_000, range: 0...100_000_000)
        receiverRetentionDays = try reader.int("RECEIVER_RETENTION_DAYS", default: 7, range: 1...36_500)
        userQuota = try reader.quota("QUOTA_", default: .user)
        adminQuota = try reader.quota("ADMIN_QUOTA_", default: .admin)
        guard trustedProxies.count == proxies.count else {
            throw ConfigurationError(
                "TRUSTED_PROXIES must be comma-separated CIDRs and addresses (10.0.0.0/8, 127.0.0.1), got '\(reader.string("TRUSTED_PROXIES") ?? "")'"
            )
        }
    }

    struct Reader {
        let environment: [String: String]

        /// The value, or nil when unset or empty.
        func string(_ name: String) -> String? {
            guard let value = environment[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
            return value
        }

        func bool(_ name: String, default fallback: Bool) throws(ConfigurationError) -> Bool {
            guard let value = string(name) else { return fallback }
            switch value.lowercased() {
            case "1", "true", "yes", "on": return true
            case "0", "false", "no", "off": return false
            default: throw ConfigurationError("\(name) must be true or false, got '\(value)'")
            }
        }

        func int(_ name: String, default fallback: Int, range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
            guard let value = string(name) else { return fallback }
            guard let int = Int(value), range.contains(int) else {
                throw ConfigurationError("\(name) must be an integer from \(range.lowerBound) to \(range.upperBound), got '\(value)'")
            }
            return int
        }

        /// `<prefix>SCHEDULES`, `HOOKS`, `CREATES_PER_MINUTE`, `DELIVERIES_PER_SECOND`, `MIN_INTERVAL`.
        func quota(_ prefix: String, default fallback: Quota) throws(ConfigurationError) -> Quota {
            let rateName = prefix + "DELIVERIES_PER_SECOND"
            var rate = fallback.deliveriesPerSecond
            if let text = string(rateName) {
                guard let value = Double(text), value.isFinite, value > 0, value <= 1_000_000 else {
                    throw ConfigurationError("\(rateName) must be a number of deliveries a second above 0, at most 1000000, got '\(text)'")
                }
                rate = value
            }
            return Quota(
                schedules: try int(prefix + "SCHEDULES", default: fallback.schedules, range: 0...100_000_000),
                hooks: try int(prefix + "HOOKS", default: fallback.hooks, range: 0...100_000),
                createsPerMinute: try int(prefix + "CREATES_PER_MINUTE", default: fallback.createsPerMinute, range: 1...10_000_000),
                deliveriesPerSecond: rate,
                minimumInterval: string(prefix + "MIN_INTERVAL") == nil
                    ? fallback.minimumInterval : try duration(prefix + "MIN_INTERVAL", default: 0))
        }

        /// A length such as `500ms`, `1s`, `5m`, `2h`, `3650d`, in microseconds.
        func duration(_ name: String, default fallback: Int64) throws(ConfigurationError) -> Int64 {
            guard let value = string(name) else { return fallback }
            guard let microseconds = ScheduleLimits.parseDuration(value) else {
                throw ConfigurationError(
                    "\(name) must be a length like 1s, 5m, 2h or 3650d (units ms, s, m, h, d; at most 100 years), got '\(value)'")
            }
            return microseconds
        }

        func url(_ name: String, default fallback: String, schemes: [String]) throws(ConfigurationError) -> String {
            try optionalURL(name, schemes: schemes) ?? fallback
        }

        func optionalURL(_ name: String, schemes: [String]) throws(ConfigurationError) -> String? {
            guard let value = string(name) else { return nil }
            if let components = URLComponents(string: value), let scheme = components.scheme?.lowercased(), schemes.contains(scheme) {
                return value
            }
            // libpq's several hosts (`postgres://user@host1:5432,host2:5432/db`) are not one
            // URL to Foundation: the scheme is checked here, the rest by libpq at connect.
            let lowered = value.lowercased()
            if schemes.contains(where: { lowered.hasPrefix("\($0)://") }), value.contains(","),
                !value.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7F })
            {
                return value
            }
            throw ConfigurationError("\(name) must be a \(schemes[0]):// URL, got '\(Self.redacted(value))'")
        }

        /// The URL without its password, for error messages.
        static func redacted(_ value: String) -> String {
            guard var components = URLComponents(string: value) else {
                // Not one URL: hide everything between the scheme and the last "@".
                guard let start = value.range(of: "://"), let at = value.range(of: "@", options: .backwards),
                    start.upperBound <= at.lowerBound
                else { return value }
                return value.replacingCharacters(in: start.upperBound..<at.lowerBound, with: "***")
            }
            guard components.password != nil else { return value }
            components.password = "***"
            return components.string ?? value
        }
    }
}

extension Configuration {
    /// The configuration from the environment, or one clear line on standard error and exit
    /// status 78 (EX_CONFIG): what every program's main does first.
    public static func loadOrExit(program: String) -> Configuration {
        do {
            return try Configuration()
        } catch {
            FileHandle.standardError.write(Data("\(program): configuration error: \(error)\n".utf8))
            exit(78)
        }
    }
}

/// How log lines are written (`LOG_FORMAT`).
public enum LogFormat: String, Sendable, Equatable, CaseIterable {
    case text, json
}

/// The least severe level logged (`LOG_LEVEL`), as swift-log names them.
public enum LogLevel: String, Sendable, Equatable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
}
