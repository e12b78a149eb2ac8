import SchedulerCore
import Testing

@Suite("Configuration")
struct ConfigurationTests {
    let secret = ["SECRET_KEY": "0123456789abcdef0123"]

    @Test("defaults")
    func defaults() throws {
        let configuration = try Configuration(environment: secret)
        #expect(configuration.port == 8000)
        #expect(configuration.pageSize == 100)
        #expect(configuration.databaseURL == Configuration.defaultDatabaseURL)
        #expect(!configuration.debug && !configuration.useSSL)
        #expect(configuration.retryPolicy == RetryPolicy(maxAttempts: 6, delays: [5000, 30000, 300_000, 1_800_000]))
        #expect(configuration.deliveryTimeout == 30)
        #expect(configuration.deliveryRetentionDays == 30)
        #expect(configuration.beatLookahead == 1.5)
        #expect(configuration.beatPace == 5000)
        #expect(configuration.receiverConcurrency == 64)
        #expect(try Configuration(environment: secret.merging(["BEAT_LOOKAHEAD": "0"]) { $1 }).beatLookahead == 0)
        #expect(try Configuration(environment: secret.merging(["BEAT_LOOKAHEAD": "250ms"]) { $1 }).beatLookahead == 0.25)
        #expect(try Configuration(environment: secret.merging(["DELIVERY_RETENTION_DAYS": "0"]) { $1 }).deliveryRetentionDays == 0)
    }

    @Test("the original's names are read")
    func names() throws {
        let configuration = try Configuration(
            environment: secret.merging([
                "SCHEDULER_DATABASE": "postgres://u:p@db:5432/s", "BROKER_URL": "amqp://guest:guest@mq:5672/%2f", "DEBUG": "true",
                "USE_SSL": "1", "HOOK_AUTH_TOKEN": "hook", "PORT": "9000", "PAGE_SIZE": "20",
            ]) { $1 })
        #expect(configuration.databaseURL == "postgres://u:p@db:5432/s")
        #expect(configuration.debug && configuration.useSSL)
        #expect(configuration.hookAuthToken == "hook")
        #expect(configuration.port == 9000 && configuration.pageSize == 20)
    }

    @Test("LOG_FORMAT and LOG_LEVEL: text and info by default, DEBUG alone means debug, LOG_LEVEL wins, anything else refused by name")
    func logging() throws {
        func configured(_ values: [String: String]) throws -> Configuration {
            try Configuration(environment: secret.merging(values) { $1 })
        }
        let plain = try configured([:])
        #expect(plain.logFormat == .text && plain.logLevel == .info)
        #expect(try configured(["DEBUG": "true"]).logLevel == .debug)
        #expect(try configured(["DEBUG": "true", "LOG_LEVEL": "warning"]).logLevel == .warning)
        #expect(try configured(["LOG_FORMAT": "JSON", "LOG_LEVEL": "Error"]).logFormat == .json)
        #expect(try configured(["LOG_LEVEL": "critical"]).logLevel == .critical)
        for (name, value) in [("LOG_FORMAT", "xml"), ("LOG_LEVEL", "verbose"), ("LOG_LEVEL", "info\u{0}")] {
            #expect {
                try configured([name: value])
            } throws: { error in
                "\(error)".contains(name)
            }
        }
    }

    @Test("SCHEDULER_DATABASE may name several hosts, as libpq takes them")
    func severalDatabaseHosts() throws {
        let url = "postgres://u:p@primary:5432,standby:5433/seed?target_session_attrs=read-write"
        let configuration = try Configuration(environment: secret.merging(["SCHEDULER_DATABASE": url]) { $1 })
        #expect(configuration.databaseURL == url)
        // BROKER_URL likewise names a RabbitMQ cluster's nodes.
        let cluster = "amqp://app:secret@rabbit1:5672,rabbit2:5672,rabbit3:5672/%2f"
        #expect(try Configuration(environment: secret.merging(["BROKER_URL": cluster]) { $1 }).brokerURL == cluster)
    }

    @Test(
        "a missing or malformed setting is one clear line",
        arguments: [
            ([:], "SECRET_KEY is not set: set it to a long random string (API tokens are derived from it)"),
            (["SECRET_KEY": "short"], "SECRET_KEY is too short: use at least 16 characters (API tokens are derived from it)"),
            (["PORT": "eighty"], "PORT must be an integer from 1 to 65535, got 'eighty'"),
            (["PORT": "70000"], "PORT must be an integer from 1 to 65535, got '70000'"),
            (["DEBUG": "maybe"], "DEBUG must be true or false, got 'maybe'"),
            (["PAGE_SIZE": "0"], "PAGE_SIZE must be an integer from 1 to 1000, got '0'"),
            (["SCHEDULER_DATABASE": "mysql://u:secret@db/x"], "SCHEDULER_DATABASE must be a postgres:// URL, got 'mysql://u:***@db/x'"),
            (["BROKER_URL": "redis://mq"], "BROKER_URL must be a amqp:// URL, got 'redis://mq'"),
            (
                ["SCHEDULER_DATABASE": "mysql://u:secret@h1:1,h2:2/x"],
                "SCHEDULER_DATABASE must be a postgres:// URL, got 'mysql://***@h1:1,h2:2/x'"
            ),
            (
                ["SCHEDULER_DATABASE": "postgres://u:secret@h1:1,h2:2/x y"],
                "SCHEDULER_DATABASE must be a postgres:// URL, got 'postgres://***@h1:1,h2:2/x y'"
            ),
            (
                ["RETRY_DELAYS": "soon"],
                "RETRY_DELAYS must be a comma-separated list of durations like 5s,30s,5m,30m (units ms, s, m, h; at most 24h), got 'soon'"
            ),
            (["DELIVERY_ATTEMPTS": "0"], "DELIVERY_ATTEMPTS must be an integer from 1 to 100, got '0'"),
            (["BEAT_LOOKAHEAD": "11s"], "BEAT_LOOKAHEAD must be at most 10s, got '11s'"),
            (
                ["BEAT_LOOKAHEAD": "-1s"],
                "BEAT_LOOKAHEAD must be a length like 1s, 5m, 2h or 3650d (units ms, s, m, h, d; at most 100 years), got '-1s'"
            ),
            (["BEAT_PACE": "0"], "BEAT_PACE must be an integer from 1 to 1000000, got '0'"),
            (["BEAT_PACE": "-5"], "BEAT_PACE must be an integer from 1 to 1000000, got '-5'"),
            (["BEAT_PACE": "99999999999999999999"], "BEAT_PACE must be an integer from 1 to 1000000, got '99999999999999999999'"),
            (["DELIVERY_RETENTION_DAYS": "-1"], "DELIVERY_RETENTION_DAYS must be an integer from 0 to 36500, got '-1'"),
            (
                ["DELIVERY_RETENTION_DAYS": "99999999999999999999"],
                "DELIVERY_RETENTION_DAYS must be an integer from 0 to 36500, got '99999999999999999999'"
            ),
            (["HTTP_HEADER_TIMEOUT": "0"], "HTTP_HEADER_TIMEOUT must be an integer from 1 to 600, got '0'"),
            (["HTTP_MAX_CONNECTIONS": "-1"], "HTTP_MAX_CONNECTIONS must be an integer from 16 to 1000000, got '-1'"),
            (["AUTH_FAILURES_PER_MINUTE": "0"], "AUTH_FAILURES_PER_MINUTE must be an integer from 1 to 1000000, got '0'"),
            (
                ["TRUSTED_PROXIES": "10.0.0.0/8,proxy.example"],
                "TRUSTED_PROXIES must be comma-separated CIDRs and addresses (10.0.0.0/8, 127.0.0.1), got '10.0.0.0/8,proxy.example'"
            ),
            (
                ["ALLOWED_HOSTS": "a b"],
                "ALLOWED_HOSTS must be comma-separated host names (example.org, .example.org, *) and PUBLIC_URL an http(s) URL without query, got 'a b' and ''"
            ),
            (
                ["QUOTA_DELIVERIES_PER_SECOND": "nan"],
                "QUOTA_DELIVERIES_PER_SECOND must be a number of deliveries a second above 0, at most 1000000, got 'nan'"
            ),
            (["QUOTA_SCHEDULES": "-5"], "QUOTA_SCHEDULES must be an integer from 0 to 100000000, got '-5'"),
            (["ADMIN_QUOTA_CREATES_PER_MINUTE": "0"], "ADMIN_QUOTA_CREATES_PER_MINUTE must be an integer from 1 to 10000000, got '0'"),
            (["SCHEDULE_PAUSE_AFTER_FAILURES": "-1"], "SCHEDULE_PAUSE_AFTER_FAILURES must be an integer from 0 to 10000, got '-1'"),
        ] as [([String: String], String)])
    func malformed(environment: [String: String], message: String) {
        let base = environment["SECRET_KEY"] == nil && !environment.isEmpty ? secret : [:]
        #expect(throws: ConfigurationError(message)) {
            try Configuration(environment: base.merging(environment) { $1 })
        }
    }
}
