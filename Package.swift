// swift-tools-version:6.2
import PackageDescription

/// ExamBell: ends a computer-based exam for everyone in it, at once and consistently.
///
/// Modules follow the seed's boxes:
/// - `ExamBellCore`: the domain (states, wire messages, errors) and the protocols of the
///   DB store, the state store (Redis side) and the queue. No server framework in it.
/// - `ExamBellSQL`: the DB (SQLite now, PostgreSQL later) behind one SQL layer.
/// - `ExamBellMemory`: the in-process memory engine for state and queue (embedded default).
/// - `RedisClient`: a RESP2/RESP3 client on SwiftNIO (no server framework in it).
/// - `ExamBellRedis`: the Redis engine: `RedisStateStore` and the Redis Streams queue.
/// - `ExamBellServer`: web server (JSON API), socket server, admin console, browser pages.
/// - `exambell`: the thin executable.
/// - `ExamBellTestSupport`: the shared conformance suites every backend runs.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "exambell",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "exambell", targets: ["exambell"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/vapor/sqlite-kit.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/vapor/postgres-kit.git", from: "2.17.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        .target(
            name: "ExamBellCore",
            dependencies: [],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ExamBellSQL",
            dependencies: [
                "ExamBellCore",
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "SQLiteKit", package: "sqlite-kit"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ExamBellMemory",
            dependencies: ["ExamBellCore"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "RedisClient",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ExamBellRedis",
            dependencies: ["ExamBellCore", "RedisClient"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ExamBellServer",
            dependencies: [
                "ExamBellCore",
                "ExamBellSQL",
                "ExamBellMemory",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            resources: [.copy("Public")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "exambell",
            dependencies: [
                "ExamBellServer",
                "ExamBellRedis",
                "RedisClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ExamBellTestSupport",
            dependencies: ["ExamBellCore", "ExamBellSQL"],
            path: "Tests/ExamBellTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ExamBellCoreTests",
            dependencies: ["ExamBellCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ExamBellSQLTests",
            dependencies: ["ExamBellSQL", "ExamBellTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ExamBellMemoryTests",
            dependencies: ["ExamBellMemory", "ExamBellTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "RedisClientTests",
            dependencies: [
                "RedisClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ExamBellRedisTests",
            dependencies: ["ExamBellRedis", "ExamBellTestSupport", "RedisClient"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ExamBellServerTests",
            dependencies: [
                "ExamBellServer",
                "ExamBellSQL",
                "ExamBellMemory",
                "ExamBellRedis",
                "RedisClient",
                "ExamBellTestSupport",
                "exambell",
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "HummingbirdWSTesting", package: "hummingbird-websocket"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
