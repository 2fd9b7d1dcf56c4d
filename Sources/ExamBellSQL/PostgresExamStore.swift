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

    /// Connects without migrating, with the pool left for the node's service group to run
    /// (`services`); the node migrates before its server starts.
    public static func openForNode(
        url: String, timeouts: DatabaseTimeouts = DatabaseTimeouts(), failures: BackendFailures = BackendFailures(),
        logger: Logger = quietLogger
    ) throws(StoreError) -> SQLExamStore {
        SQLExamStore(executor: try PostgresExecutor(url: url, timeouts: timeouts, runner: .serviceGroup, logger: logger), failures: failures)
    }

    /// Runs `body` with a store whose pool runs in this call's task group (tools and tests):
    /// the pool stops when `body` returns or throws; nothing outlives the call. The store is
    /// migrated first unless `migrated` is false (administration, like creating a database).
    public static func withStore<R: Sendable>(
        url: String, timeouts: DatabaseTimeouts = DatabaseTimeouts(), migrated: Bool = true, failures: BackendFailures = BackendFailures(),
        logger: Logger = quietLogger, _ body: (SQLExamStore) async throws -> R
    ) async throws -> R {
        try await PostgresExecutor.withExecutor(url: url, timeouts: timeouts, logger: logger) { executor in
            let store = SQLExamStore(executor: executor, failures: failures)
            if migrated { try await store.migrate() }
            return try await body(store)
        }
    }
}
