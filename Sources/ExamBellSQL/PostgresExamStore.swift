import ExamBellCore
import Foundation
import Logging
import ServiceLifecycle

/// The DB at scale: `SQLExamStore` on PostgreSQL, migrated and ready.
public enum PostgresExamStore {
    /// Warnings and worse only: the pool reports every failed connection attempt at info.
    public static var quietLogger: Logger {
        var logger = Logger(label: "exambell.postgres")
        logger.logLevel = .warning
        return logger
    }

    /// Connects to `postgres://…` and applies the migrations not yet applied.
    public static func open(
        url: String, timeouts: DatabaseTimeouts = DatabaseTimeouts(), failures: BackendFailures = BackendFailures(),
        logger: Logger = quietLogger
    ) async throws -> SQLExamStore {
        let store = try await openUnmigrated(url: url, timeouts: timeouts, failures: failures, logger: logger)
        try await store.migrate()
        return store
    }

    /// Connects without migrating, with the pool left for the node's service group to run
    /// (`services`); the node migrates before its server starts.
    public static func openForNode(
        url: String, timeouts: DatabaseTimeouts = DatabaseTimeouts(), failures: BackendFailures = BackendFailures(),
        logger: Logger = quietLogger
    ) throws(StoreError) -> SQLExamStore {
        SQLExamStore(executor: try PostgresExecutor(url: url, timeouts: timeouts, runner: .serviceGroup, logger: logger), failures: failures)
    }

    /// Runs `body` with a migrated store whose pool runs in this call's task group (tools): the
    /// pool stops when `body` returns or throws; nothing outlives the call.
    public static func withStore<R: Sendable>(
        url: String, timeouts: DatabaseTimeouts = DatabaseTimeouts(), logger: Logger = quietLogger,
        _ body: (SQLExamStore) async throws -> R
    ) async throws -> R {
        let store = try openForNode(url: url, timeouts: timeouts, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for service in store.services { group.addTask { try await service.run() } }
            defer { group.cancelAll() }
            try await store.migrate()
            return try await body(store)
        }
    }

    /// Connects without migrating (for administration, like creating a database).
    public static func openUnmigrated(
        url: String, timeouts: DatabaseTimeouts = DatabaseTimeouts(), failures: BackendFailures = BackendFailures(),
        logger: Logger = quietLogger
    ) async throws -> SQLExamStore {
        SQLExamStore(executor: try PostgresExecutor(url: url, timeouts: timeouts, logger: logger), failures: failures)
    }
}
