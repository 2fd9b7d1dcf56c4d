// swift-tools-version:6.2
import PackageDescription

/// ExamBell: ends a computer-based exam for everyone in it, at once and consistently.
///
/// Modules follow the seed's boxes:
/// - `ExamBellCore`: the domain (states, wire messages, errors) and the protocols of the
///   DB store, the state store (Redis side) and the queue. No server framework in it.
/// - `ExamBellProof`: evidence anyone can check: canonical JSON, the audit chain, receipts.
/// - `ExamBellSQL`: the DB (SQLite now, PostgreSQL later) behind one SQL layer.
/// - `ExamBellMemory`: the in-process memory engine for state and queue (embedded default).
/// - `RedisClient`: a RESP2/RESP3 client on SwiftNIO (no server framework in it).
/// - `ExamBellRedis`: the Redis engine: `RedisStateStore` and the Redis Streams queue.
/// - `ExamBellRuntime`: what every node role shares, no HTTP in it: budgets, metrics, fault
///   points, session tokens and tickets, secrets and passwords, the roster.
/// - `ExamBellFlow`: the end and the exam day as services (end, delivery, outbox relay, final
///   sync, scheduler, time changes, setup, receipts, the audit chain). No HTTP framework in it.
/// - `ExamBellHTTP`: the HTTP edge both servers share: request context and who is asking,
///   connection guard and budgets, origins, trusted proxies, error bodies.
/// - `ExamBellWeb`: the web server: JSON API controllers, webhooks, admin console, pages.
/// - `ExamBellSocket`: the socket server: its NIO pipeline, the hub, the queue consumer.
/// - `ExamBellServer`: the assembly: builds `serve`, `web`, `socket` and `admin` nodes.
/// - `ExamBellClient`: the web server's JSON API from outside (`exambell end`, the demo, bench).
/// - `ExamBellBench`: `exambell bench`, the load generator (kept out of the server's graph).
/// - `exambell`: the thin executable.
///
/// Each target lists exactly the modules it imports.
/// - `ExamBellTestSupport`: the shared conformance suites every backend runs.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "exambell",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "exambell", targets: ["exambell"])
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
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.4.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        .target(
            name: "ExamBellCore",
            dependencies: [],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ExamBellProof",
            dependencies: ["ExamBellCore", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ExamBellSQL",
            dependencies: [
                "ExamBellCore",
                "ExamBellProof",
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "SQLiteKit", package: "sqlite-kit"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresKit", package: "postgres-kit"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
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
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ExamBellRedis",
            dependencies: ["ExamBellCore", "RedisClient"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ExamBellRuntime",
            dependencies: [
                "ExamBellCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ExamBellFlow",
            dependencies: [
                "ExamBellCore",
                "ExamBellProof",
                "ExamBellRuntime",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ExamBellHTTP",
            dependencies: [
                "ExamBellCore",
                "ExamBellRuntime",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ExamBellSocket",
            dependencies: [
                "ExamBellCore",
                "ExamBellRuntime",
                "ExamBellHTTP",
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ExamBellWeb",
            dependencies: [
                "ExamBellCore",
                "ExamBellProof",
                "ExamBellRuntime",
                "ExamBellFlow",
                "ExamBellHTTP",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Public")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ExamBellServer",
            dependencies: [
                "ExamBellCore",
                "ExamBellRuntime",
                "ExamBellFlow",
                "ExamBellHTTP",
                "ExamBellSocket",
                "ExamBellWeb",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ExamBellClient",
            dependencies: [
                "ExamBellCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ExamBellBench",
            dependencies: [
                "ExamBellCore",
                "ExamBellClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "exambell",
            dependencies: [
                "ExamBellCore",
                "ExamBellProof",
                "ExamBellSQL",
                "ExamBellMemory",
                "ExamBellRedis",
                "RedisClient",
                "ExamBellRuntime",
                "ExamBellHTTP",
                "ExamBellWeb",
                "ExamBellServer",
                "ExamBellClient",
                "ExamBellBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // A fresh process for the test that Dispatch is primed before descriptors run out.
        .executableTarget(
            name: "exambell-dispatch-probe",
            dependencies: ["ExamBellCore"],
            path: "Tests/DispatchProbe",
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
            dependencies: ["ExamBellCore", "ExamBellProof", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ExamBellSQLTests",
            dependencies: ["ExamBellCore", "ExamBellSQL", "ExamBellTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ExamBellMemoryTests",
            dependencies: ["ExamBellCore", "ExamBellMemory", "ExamBellTestSupport"],
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
            dependencies: ["ExamBellCore", "ExamBellRedis", "ExamBellTestSupport", "RedisClient"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ExamBellServerTests",
            dependencies: [
                "ExamBellCore",
                "ExamBellProof",
                "ExamBellServer",
                "ExamBellRuntime",
                "ExamBellFlow",
                "ExamBellHTTP",
                "ExamBellSocket",
                "ExamBellWeb",
                "ExamBellSQL",
                "ExamBellMemory",
                "ExamBellRedis",
                "RedisClient",
                "ExamBellTestSupport",
                // Not imported: the cluster, shutdown and bench tests run the built binary.
                "exambell",
                "exambell-dispatch-probe",
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
