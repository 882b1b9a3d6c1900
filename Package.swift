// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "spool",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Spool", targets: ["Spool"]),
        .library(name: "SpoolSaga", targets: ["SpoolSaga"]),
        .library(name: "SpoolEventSourcing", targets: ["SpoolEventSourcing"]),
        .library(name: "SpoolTesting", targets: ["SpoolTesting"]),
        .library(name: "SpoolServer", targets: ["SpoolServer"]),
        .library(name: "SpoolWire", targets: ["SpoolWire"]),
        .library(name: "SpoolStorage", targets: ["SpoolStorage"]),
        .executable(name: "spoold", targets: ["spoold"]),
        .executable(name: "spool", targets: ["spool"]),
        .executable(name: "spool-storage-bench", targets: ["spool-storage-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
    ],
    targets: [
        // C boundary
        .systemLibrary(
            name: "CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        .target(name: "CSpoolChecksum"),

        // Libraries, in dependency order.
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"]),
        .target(name: "SpoolWire", dependencies: ["CSpoolChecksum"]),
        .target(
            name: "SpoolStorage",
            dependencies: ["SpoolWire", "CSpoolChecksum", .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics")]
        ),
        .target(
            name: "SpoolBroker",
            dependencies: ["SpoolWire", "SpoolStorage", .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics")]
        ),
        .target(
            name: "SpoolServer",
            dependencies: [
                "SpoolBroker", "ZeroMQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "Spool",
            dependencies: [
                "SpoolWire", "ZeroMQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "SpoolSaga",
            dependencies: [
                "Spool", "SpoolWire", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "SpoolEventSourcing",
            dependencies: ["Spool", "SpoolWire", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "SpoolConsole",
            dependencies: [
                "Spool",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            resources: [
                .embedInCode("Console/index.html"),
                .embedInCode("Console/console.js"),
                .embedInCode("Console/console.css"),
            ]
        ),
        .target(name: "SpoolTesting", dependencies: ["Spool", "SpoolServer", "SpoolStorage", "ZeroMQ"]),
        .target(name: "BenchmarkSupport"),

        // Executables
        .executableTarget(
            name: "spoold",
            dependencies: [
                "SpoolServer", "SpoolStorage", "SpoolWire", "ZeroMQ", "SpoolConsole", "Spool",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(
            name: "spool",
            dependencies: [
                "Spool", "SpoolWire", "ZeroMQ", "BenchmarkSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "spool-storage-bench",
            dependencies: [
                "SpoolStorage", "SpoolWire", "Spool", "SpoolServer", "SpoolTesting", "BenchmarkSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Tests
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "SpoolWireTests", dependencies: ["SpoolWire", "SpoolTesting"]),
        .testTarget(name: "SpoolStorageTests", dependencies: ["SpoolStorage", "SpoolTesting"]),
        .testTarget(name: "SpoolBrokerTests", dependencies: ["SpoolBroker", "SpoolTesting"]),
        .testTarget(name: "SpoolConsoleTests", dependencies: [
            "SpoolConsole", .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        .testTarget(name: "SpoolTests", dependencies: ["Spool", "SpoolTesting", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),
        .testTarget(name: "SpoolEventSourcingTests", dependencies: ["SpoolEventSourcing", "SpoolTesting", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(
            name: "SpoolSagaTests",
            dependencies: [
                "SpoolSaga", "SpoolTesting", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["Spool", "SpoolSaga", "SpoolTesting", "ZeroMQ", "spoold", "spool", "spool-storage-bench",
                           .product(name: "GRDB", package: "GRDB.swift")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
