// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "seed-scheduler",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "scheduler-web", targets: ["scheduler-web"]),
        .executable(name: "scheduler-ctl", targets: ["scheduler-ctl"]),
        .executable(name: "scheduler-beat", targets: ["scheduler-beat"]),
        .executable(name: "scheduler-worker", targets: ["scheduler-worker"]),
    ],
    // Each at the exact version the tests ran with (README: "Dependencies" says how to move
    // them forward); what they depend on is resolved within their own ranges.
    dependencies: [
        // Without its default trait ConfigurationSupport (swift-configuration: unused here).
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", exact: "2.28.1", traits: ["FullFoundation"]),
        .package(url: "https://github.com/apple/swift-http-types.git", exact: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", exact: "1.35.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", exact: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", exact: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", exact: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", exact: "2.4.1"),
    ],
    targets: [
        // C libraries: a module map and a shim header each, nothing else.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),

        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),

        // The domain: schedules, cron, intervals, time zones, JSON, validation. No I/O, no C.
        .target(name: "SchedulerCore", swiftSettings: swiftSettings),

        // The only module that imports libpq.
        .target(
            name: "Postgres",
            dependencies: [
                "CLibPQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // The only module that imports librabbitmq.
        .target(
            name: "AMQP",
            dependencies: ["CRabbitMQ", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),

        // The only module that imports libcurl.
        .target(
            name: "HTTPClient",
            dependencies: ["CCurl"],
            swiftSettings: swiftSettings
        ),

        // Metrics: the Prometheus registry, its text, and a small server for beat and worker.
        .target(
            name: "Telemetry",
            dependencies: [
                "SchedulerCore",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // Rows <-> domain: the SQL of schedules, users, tokens and webhooks; migrations.
        .target(
            name: "SchedulerStore",
            dependencies: [
                "SchedulerCore", "Postgres",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // The pipeline's shared pieces: topology, job messages, dead-letter re-drive.
        .target(
            name: "DeliveryQueues",
            dependencies: [
                "AMQP", "SchedulerCore", "SchedulerStore", "Postgres",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // scheduler-beat's logic.
        .target(
            name: "Beat",
            dependencies: [
                "Telemetry", .product(name: "Metrics", package: "swift-metrics"),
                "AMQP", "DeliveryQueues", "SchedulerCore", "SchedulerStore", "Postgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // scheduler-worker's logic.
        .target(
            name: "Worker",
            dependencies: [
                "Telemetry", .product(name: "Metrics", package: "swift-metrics"),
                "AMQP", "HTTPClient", "DeliveryQueues", "SchedulerCore", "SchedulerStore", "Postgres",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // scheduler-web's logic: the REST API.
        .target(
            name: "SchedulerAPI",
            dependencies: [
                "SchedulerCore", "SchedulerStore", "Postgres", "DeliveryQueues", "AMQP", "Telemetry", "HTTPClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Resources/openapi.yaml"), .copy("Resources/console.html"), .copy("Resources/console.js")],
            swiftSettings: swiftSettings
        ),

        // scheduler-ctl's logic: the operator's commands.
        .target(
            name: "Ctl",
            dependencies: [
                "SchedulerCore", "SchedulerStore", "Postgres", "AMQP", "DeliveryQueues", "HTTPClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        .executableTarget(name: "scheduler-web", dependencies: ["SchedulerAPI", "Telemetry"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "scheduler-ctl",
            dependencies: ["Ctl", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "scheduler-beat",
            dependencies: [
                "Beat", "Telemetry",
            ],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "scheduler-worker",
            dependencies: [
                "Worker", "Telemetry",
            ],
            swiftSettings: swiftSettings),

        .target(
            name: "TestSupport",
            dependencies: [
                "Postgres", "SchedulerStore", .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "SchedulerCoreTests", dependencies: ["SchedulerCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "WorkerTests",
            dependencies: ["Worker", "AMQP", "HTTPClient", "DeliveryQueues", "SchedulerStore", "SchedulerCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PostgresTests",
            dependencies: ["Postgres", "SchedulerStore", "SchedulerCore", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SchedulerAPITests",
            dependencies: [
                "SchedulerAPI", "SchedulerStore", "SchedulerCore", "Postgres", "TestSupport",
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "Beat", "Worker", "DeliveryQueues", "AMQP", "SchedulerAPI", "SchedulerStore", "SchedulerCore", "Postgres", "TestSupport",
                "Telemetry", "HTTPClient",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CtlTests",
            dependencies: [
                "Ctl", "SchedulerStore", "SchedulerCore", "Postgres", "AMQP", "DeliveryQueues", "Beat", "Worker", "TestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
