import ExamBellCore
import Foundation
import Logging
import NIOCore
import NIOPosix
import SQLKit
import SQLiteKit
import SQLiteNIO
import ServiceLifecycle
import Synchronization

/// The embedded DB: one SQLite file (WAL journal), one connection, transactions in turn.
public final class SQLiteExecutor: SQLExecutor {
    public let dialect = SQLStoreDialect.sqlite
    private let connection: SQLiteConnection
    private let lock = AsyncSerialLock()
    private let closed = Atomic<Bool>(false)
    private let logger: Logger

    /// Opens (creating when needed) the SQLite database at `path`; `:memory:` for a private
    /// in-memory database.
    public static func open(path: String, logger: Logger) async throws -> SQLiteExecutor {
        let storage: SQLiteConnection.Storage
        if path == ":memory:" {
            storage = .memory
        } else {
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            storage = .file(path: path)
        }
        let connection = try await SQLiteConnection.open(
            storage: storage, threadPool: .singleton, logger: logger, on: MultiThreadedEventLoopGroup.singleton.any()
        ).get()
        let executor = SQLiteExecutor(connection: connection, logger: logger)
        try await executor.withConnection { db in
            try await db.raw("PRAGMA journal_mode = WAL").run()
            try await db.raw("PRAGMA synchronous = NORMAL").run()
            try await db.raw("PRAGMA foreign_keys = ON").run()
            try await db.raw("PRAGMA busy_timeout = 5000").run()
            // The write-ahead log goes back to 16 MiB after each checkpoint: a burst of
            // writes does not leave the data folder that much larger for good.
            try await db.raw("PRAGMA journal_size_limit = 16777216").run()
        }
        return executor
    }

    private init(connection: SQLiteConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    public func withConnection<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R)
        async throws -> R
    {
        let db = connection.sql()
        return try await lock.withLock { try await body(db) }
    }

    public func withTransaction<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R)
        async throws -> R
    {
        let db = connection.sql()
        return try await lock.withLock {
            // BEGIN, COMMIT and ROLLBACK run outside the caller's task: a cancelled caller
            // must never leave the shared connection inside a transaction.
            try await Task { try await db.raw("BEGIN IMMEDIATE").run() }.value
            do {
                let result = try await body(db)
                try await Task { try await db.raw("COMMIT").run() }.value
                return result
            } catch {
                do {
                    try await Task { try await db.raw("ROLLBACK").run() }.value
                } catch {
                    logger.error("SQLite rollback failed", metadata: ["error": "\(error)"])
                }
                throw error
            }
        }
    }

    /// The file is closed by the node's service group, when it stops: its first service, so
    /// it stops after every part that uses the file.
    public var services: [any Service] { [Closer(executor: self)] }

    struct Closer: Service {
        let executor: SQLiteExecutor

        func run() async throws {
            try? await gracefulShutdown()
            try await executor.shutdown()
        }
    }

    public func shutdown() async throws {
        guard closed.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        try await connection.close().get()
    }

    deinit {
        // An executor dropped without shutdown() still closes its file (the close keeps the
        // connection alive until it is done).
        if closed.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
            _ = connection.close()
        }
    }
}
