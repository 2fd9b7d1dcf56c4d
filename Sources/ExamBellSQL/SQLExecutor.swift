import ExamBellCore
import SQLKit
import ServiceLifecycle

/// The seam between ExamBell's SQL and one database backend.
///
/// `SQLExamStore` writes every query once against `SQLDatabase`; a backend only says how to
/// get a connection, how to run a transaction and the few DDL words that differ.
public protocol SQLExecutor: Sendable {
    /// The DDL words that differ between backends.
    var dialect: SQLStoreDialect { get }

    /// Runs `body` on one connection outside a transaction.
    func withConnection<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R

    /// Runs `body` in one transaction on one connection: committed when it returns,
    /// rolled back when it throws.
    func withTransaction<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws
        -> R

    /// `withTransaction` for long work (migrations, bulk registration): the call may hold its
    /// connection up to `timeLimit`, and its statements may wait and run that long.
    func withLongTransaction<R: Sendable>(
        timeLimit: Duration, _ body: @escaping @Sendable (any SQLDatabase) async throws -> R
    ) async throws -> R

    /// What must run for the executor to work, in its owner's service group (PostgreSQL's
    /// pool; SQLite's closing of its file when the group stops).
    var services: [any Service] { get }

    /// Closes the connections it runs itself.
    func shutdown() async throws
}

extension SQLExecutor {
    public var services: [any Service] { [] }

    /// Backends whose calls have no time bounds of their own run long work like any other.
    public func withLongTransaction<R: Sendable>(
        timeLimit: Duration, _ body: @escaping @Sendable (any SQLDatabase) async throws -> R
    ) async throws -> R {
        try await withTransaction(body)
    }
}

/// The DDL that differs between SQLite and PostgreSQL.
public struct SQLStoreDialect: Sendable {
    /// The column type of an auto-increment 64-bit primary key.
    public var autoIncrementPrimaryKey: String
    /// A statement that, run first in a transaction, keeps other nodes' migrations out until
    /// it commits; nil where the transaction itself excludes them (SQLite's BEGIN IMMEDIATE).
    public var migrationLock: String?

    public init(autoIncrementPrimaryKey: String, migrationLock: String?) {
        self.autoIncrementPrimaryKey = autoIncrementPrimaryKey
        self.migrationLock = migrationLock
    }

    public static let sqlite = SQLStoreDialect(autoIncrementPrimaryKey: "INTEGER PRIMARY KEY AUTOINCREMENT", migrationLock: nil)
    public static let postgres = SQLStoreDialect(
        autoIncrementPrimaryKey: "BIGSERIAL PRIMARY KEY", migrationLock: "SELECT pg_advisory_xact_lock(7270001)"
    )
}
