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
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
    ],
    targets: [
        // C libraries: a module map and a shim header each, nothing else.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),

        // The domain: schedules, cron, intervals, time zones, JSON, validation. No I/O, no C.
        .target(name: "SchedulerCore", swiftSettings: swiftSettings),

        // The only module that imports libpq.
        .target(
            name: "Postgres",
            dependencies: [
                "CLibPQ",
                .product(name: "Logging", package: "swift-log"),
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

        // scheduler-web's logic: the REST API.
        .target(
            name: "SchedulerAPI",
            dependencies: [
                "SchedulerCore", "SchedulerStore", "Postgres",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // scheduler-ctl's logic: the operator's commands.
        .target(
            name: "Ctl",
            dependencies: [
                "SchedulerCore", "SchedulerStore", "Postgres",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        .executableTarget(name: "scheduler-web", dependencies: ["SchedulerAPI"], swiftSettings: swiftSettings),
        .executableTarget(name: "scheduler-ctl", dependencies: ["Ctl"], swiftSettings: swiftSettings),

        .target(
            name: "TestSupport",
            dependencies: ["Postgres", "SchedulerStore", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "SchedulerCoreTests", dependencies: ["SchedulerCore"], swiftSettings: swiftSettings),
        .testTarget(
            name: "PostgresTests",
            dependencies: ["Postgres", "SchedulerStore", "SchedulerCore", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SchedulerAPITests",
            dependencies: [
                "SchedulerAPI", "SchedulerStore", "SchedulerCore", "Postgres", "TestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CtlTests",
            dependencies: ["Ctl", "SchedulerStore", "Postgres", "TestSupport"],
            swiftSettings: swiftSettings
        ),
    ]
)
