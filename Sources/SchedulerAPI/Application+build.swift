import DeliveryQueues
import Foundation
import Hummingbird
import Logging
import Postgres
import SchedulerCore
import SchedulerStore
import ServiceLifecycle

/// Builds scheduler-web: the router over a pool of PostgreSQL connections. The pool is
/// closed when the application stops.
public func buildApplication(
    configuration: Configuration, logger: Logger
) -> some ApplicationProtocol {
    let pool = PostgresPool(
        url: configuration.databaseURL, size: configuration.databasePoolSize, checkoutTimeout: configuration.databasePoolTimeout,
        statementTimeout: configuration.databaseStatementTimeout, logger: logger)
    let status = OperationsStatus(pool: pool, brokerURL: configuration.brokerURL, policy: configuration.retryPolicy, logger: logger)
    let endpoints = EndpointCache()
    let router = buildRouter(configuration: configuration, pool: pool, logger: logger, status: status, endpoints: endpoints)
    raiseDescriptorLimit(to: configuration.httpMaxConnections + configuration.databasePoolSize + 256, logger: logger)
    var application = Application(
        router: router, server: .guarded(configuration.connectionLimits),
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: "scheduler-web",
            availableConnectionsDelegate: .maximum(configuration.httpMaxConnections, logger: logger)),
        logger: logger)
    application.addServices(
        pool, QueueSampler(status: status, store: ConsoleStore(pool: pool), interval: 5, logger: logger),
        EndpointWarmer(cache: endpoints, store: ConsoleStore(pool: pool), interval: EndpointCache.warmEvery, logger: logger))
    return application
}

/// Raises the soft limit on open descriptors towards `wanted` (at most the hard limit), so
/// that `HTTP_MAX_CONNECTIONS`, not a default of 1,024, bounds the connections; says so
/// when the hard limit is lower.
func raiseDescriptorLimit(to wanted: Int, logger: Logger) {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < rlim_t(wanted) else { return }
    limit.rlim_cur = min(rlim_t(wanted), limit.rlim_max)
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    if limit.rlim_cur < rlim_t(wanted) {
        logger.warning(
            "the open-files limit is below HTTP_MAX_CONNECTIONS and what the pool needs: raise it (ulimit -n)",
            metadata: ["limit": "\(limit.rlim_cur)", "wanted": "\(wanted)"])
    }
}

extension Configuration {
    /// scheduler-web's bounds on connections.
    public var connectionLimits: ConnectionLimits {
        ConnectionLimits(
            headerTimeout: .seconds(httpHeaderTimeout), idleTimeout: .seconds(httpIdleTimeout), maximumConnections: httpMaxConnections)
    }
}

/// The API's routes and middleware. Tests call this with their own pool.
public func buildRouter(configuration: Configuration, pool: PostgresPool, logger: Logger) -> Router<SchedulerRequestContext> {
    buildRouter(configuration: configuration, pool: pool, logger: logger, status: nil, endpoints: EndpointCache())
}

func buildRouter(
    configuration: Configuration, pool: PostgresPool, logger: Logger, status: OperationsStatus?, endpoints: EndpointCache
) -> Router<SchedulerRequestContext> {
    let settings = APISettings(configuration)
    let users = UserStore(pool: pool, minter: TokenMinter(secretKey: configuration.secretKey))
    let router = Router(context: SchedulerRequestContext.self)
    router.add(middleware: ErrorMiddleware(maxBodyBytes: configuration.maxBodyBytes))
    router.add(middleware: HostMiddleware(hosts: configuration.hostPolicy))
    router.add(middleware: MetricsMiddleware())
    // Every request logged at `LOG_LEVEL` debug or trace (`DEBUG=true` alone means debug).
    if [.debug, .trace].contains(configuration.logLevel) { router.add(middleware: LogRequestsMiddleware(.info)) }
    let status =
        status ?? OperationsStatus(pool: pool, brokerURL: configuration.brokerURL, policy: configuration.retryPolicy, logger: logger)
    PrometheusController(status: status).addRoutes(to: router)

    router.get("api/v1/schema/") { _, _ in
        Response(
            status: .ok, headers: [.contentType: "application/yaml"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
    }

    let throttle = AuthThrottle(limit: configuration.authFailuresPerMinute)
    let authentication = AuthenticationMiddleware(users: users, throttle: throttle, trustedProxies: configuration.trustedProxies)
    let api = router.group("api").add(middleware: authentication)
    let deliveries = DeliveryStore(pool: pool)
    let pusher = MetricsPusher(configuration: configuration, logger: logger)
    let quotas = QuotaStore(pool: pool, defaults: settings.quotas)
    ScheduleController(
        store: ScheduleStore(pool: pool, hookAuthToken: configuration.hookAuthToken), history: ScheduleHistory(pool: pool),
        quotas: quotas, deliveryStore: deliveries,
        pusher: pusher, settings: settings
    )
    .addRoutes(to: api)
    QuotaController(store: quotas, deliveries: deliveries, deadLetterBound: configuration.deadLettersPerTenant).addRoutes(to: api)
    let redriver = DeadLetterRedriver(
        brokerURL: configuration.brokerURL, policy: configuration.retryPolicy, store: deliveries, logger: logger)
    DeadLetterController(store: deliveries, redriver: redriver, settings: settings).addRoutes(to: api)
    let console = ConsoleController(
        users: users, store: ConsoleStore(pool: pool), deliveries: deliveries, receivers: ReceiverStore(pool: pool), redriver: redriver,
        status: status,
        useSSL: settings.useSSL || settings.hosts.publicURL?.lowercased().hasPrefix("https://") == true, authentication: authentication,
        endpointCache: endpoints)
    console.addPages(to: router)
    console.addRoutes(to: api)
    UserController(store: users, settings: settings).addRoutes(to: api)
    WebhookController(store: WebhookStore(pool: pool), quotas: quotas, settings: settings).addRoutes(to: api)
    HealthController(status: status).addRoutes(to: api)
    MetricsController(pool: pool, pusher: pusher).addRoutes(to: api)
    return router
}
