// swift-tools-version:6.0
// The order saga on Spool: five services (order, stock, balance, delivery, notification) and a supervisor,
// each with its own SQLite database, a demo that runs them, and their tests. Its own package so that the HTTP
// server (Hummingbird) and SQLite (GRDB) stay out of the SDK users' builds.
import PackageDescription

let package = Package(
    name: "spool-samples",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "order-service", targets: ["order-service"]),
        .executable(name: "stock-service", targets: ["stock-service"]),
        .executable(name: "balance-service", targets: ["balance-service"]),
        .executable(name: "delivery-service", targets: ["delivery-service"]),
        .executable(name: "notification-service", targets: ["notification-service"]),
        .executable(name: "supervisor-service", targets: ["supervisor-service"]),
        .executable(name: "saga-demo", targets: ["saga-demo"]),
    ],
    dependencies: [
        .package(name: "spool", path: ".."),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // The events of the saga, shared by every service.
        .target(name: "SagaEvents", dependencies: [.product(name: "Spool", package: "spool")]),
        // Seed data, command-line options, the run loop and the metrics (Prometheus, `GET /metrics`) every service shares.
        .target(
            name: "ServiceKit",
            dependencies: [
                .product(name: "Spool", package: "spool"), .product(name: "SpoolSaga", package: "spool"),
                .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            resources: [.copy("seed.json")]
        ),
        .target(
            name: "OrderService",
            dependencies: ["SagaEvents", "ServiceKit", .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "SpoolEventSourcing", package: "spool")]
        ),
        .target(name: "StockService", dependencies: ["SagaEvents", "ServiceKit"]),
        .target(name: "BalanceService", dependencies: ["SagaEvents", "ServiceKit"]),
        .target(name: "DeliveryService", dependencies: ["SagaEvents", "ServiceKit"]),
        .target(name: "NotificationService", dependencies: ["SagaEvents", "ServiceKit"]),
        // The supervisor's rule table (`--mode supervised`).
        .target(name: "OrderSupervisor", dependencies: ["SagaEvents", "ServiceKit"]),
        // Starts processes, places orders, reads the four databases and checks the invariants.
        .target(
            name: "SagaHarness",
            dependencies: ["ServiceKit", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "SpoolTesting", package: "spool")]
        ),
        .executableTarget(name: "order-service", dependencies: ["OrderService", "ServiceKit"]),
        .executableTarget(name: "stock-service", dependencies: ["StockService", "ServiceKit"]),
        .executableTarget(name: "balance-service", dependencies: ["BalanceService", "ServiceKit"]),
        .executableTarget(name: "delivery-service", dependencies: ["DeliveryService", "ServiceKit"]),
        .executableTarget(name: "notification-service", dependencies: ["NotificationService", "ServiceKit"]),
        .executableTarget(name: "supervisor-service", dependencies: ["OrderSupervisor", "ServiceKit"]),
        .executableTarget(
            name: "saga-demo",
            dependencies: ["SagaHarness", .product(name: "SpoolTesting", package: "spool"),
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(
            name: "ServiceTests",
            dependencies: [
                "OrderService", "StockService", "BalanceService", "DeliveryService", "NotificationService", "OrderSupervisor", "SagaEvents",
                "SagaHarness", .product(name: "SpoolTesting", package: "spool"), .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .testTarget(
            name: "SagaEndToEndTests",
            dependencies: ["SagaHarness", .product(name: "Spool", package: "spool"), .product(name: "SpoolTesting", package: "spool")]
        ),
    ]
)
