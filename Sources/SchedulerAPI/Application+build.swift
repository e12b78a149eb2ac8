import DeliveryQueues
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
    var application = Application(
        router: router,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "scheduler-web"),
        logger: logger)
    application.addServices(
        pool, QueueSampler(status: status, store: ConsoleStore(pool: pool), interval: 5, logger: logger),
        EndpointWarmer(cache: endpoints, store: ConsoleStore(pool: pool), interval: EndpointCache.warmEvery, logger: logger))
    return application
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
    router.add(middleware: MetricsMiddleware())
    if configuration.debug { router.add(middleware: LogRequestsMiddleware(.info)) }
    let status =
        status ?? OperationsStatus(pool: pool, brokerURL: configuration.brokerURL, policy: configuration.retryPolicy, logger: logger)
    PrometheusController(status: status).addRoutes(to: router)

    router.get("api/v1/schema/") { _, _ in
        Response(
            status: .ok, headers: [.contentType: "application/yaml"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
    }

    let api = router.group("api").add(middleware: AuthenticationMiddleware(users: users))
    let deliveries = DeliveryStore(pool: pool)
    let pusher = MetricsPusher(configuration: configuration, logger: logger)
    ScheduleController(store: ScheduleStore(pool: pool), deliveryStore: deliveries, pusher: pusher, settings: settings).addRoutes(to: api)
    let redriver = DeadLetterRedriver(
        brokerURL: configuration.brokerURL, policy: configuration.retryPolicy, store: deliveries, logger: logger)
    DeadLetterController(store: deliveries, redriver: redriver, settings: settings).addRoutes(to: api)
    let console = ConsoleController(
        users: users, store: ConsoleStore(pool: pool), deliveries: deliveries, redriver: redriver, status: status, useSSL: settings.useSSL,
        endpointCache: endpoints)
    console.addPages(to: router)
    console.addRoutes(to: api)
    UserController(store: users, settings: settings).addRoutes(to: api)
    WebhookController(store: WebhookStore(pool: pool), settings: settings).addRoutes(to: api)
    HealthController(status: status).addRoutes(to: api)
    MetricsController(pool: pool, pusher: pusher).addRoutes(to: api)
    return router
}
