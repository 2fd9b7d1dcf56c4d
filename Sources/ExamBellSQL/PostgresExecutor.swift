import ExamBellCore
import Foundation
import Logging
import PostgresKit
import PostgresNIO
import SQLKit
import Synchronization

/// The DB at scale: a PostgreSQL connection pool (postgres-nio's `PostgresClient`).
public final class PostgresExecutor: SQLExecutor {
    public let dialect = SQLStoreDialect.postgres
    private let configuration: PostgresClient.Configuration
    private let logger: Logger
    /// The pool, and the task running it. After a database outage the pool is replaced, so
    /// that service resumes as soon as PostgreSQL is back (rather than after the pool's own
    /// backoff and circuit breaker).
    private let pool: Mutex<(client: PostgresClient, runner: Task<Void, Never>, made: ContinuousClock.Instant)>

    /// A pool for `postgres://user[:pass]@host:port/db` (TLS when the server offers it).
    public init(url: String, logger: Logger) throws(ExamBellError) {
        guard let components = URLComponents(string: url), components.scheme == "postgres" || components.scheme == "postgresql",
            let host = components.host, !host.isEmpty, let user = components.user, !user.isEmpty
        else {
            throw .badRequest(code: "invalid_database_url", "--database must look like postgres://user[:password]@host:port/database")
        }
        let database = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: user.removingPercentEncoding ?? user,
            password: components.password?.removingPercentEncoding, database: database.isEmpty ? nil : database,
            tls: .disable
        )
        configuration.options.maximumConnections = 16
        self.configuration = configuration
        self.logger = logger
        self.pool = Mutex(Self.makePool(configuration, logger))
    }

    private static func makePool(_ configuration: PostgresClient.Configuration, _ logger: Logger)
        -> (client: PostgresClient, runner: Task<Void, Never>, made: ContinuousClock.Instant)
    {
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return (client, Task { await client.run() }, .now)
    }

    /// Runs `body` with a pooled connection; a failure to get a working connection replaces
    /// the pool (at most once a second) before it is rethrown.
    private func withPooledConnection<R: Sendable>(_ body: (PostgresConnection) async throws -> R) async throws -> R {
        let client = pool.withLock { $0.client }
        do {
            return try await client.withConnection(body)
        } catch let error as ExamBellError {
            throw error
        } catch {
            if error is ConnectionPoolError || (error as? PSQLError)?.code == .connectionError
                || (error as? PSQLError)?.code == .serverClosedConnection
            {
                let retired = pool.withLock { pool -> Task<Void, Never>? in
                    guard pool.client === client, ContinuousClock.now - pool.made > .seconds(1) else { return nil }
                    let old = pool.runner
                    pool = Self.makePool(configuration, logger)
                    return old
                }
                retired?.cancel()
            }
            throw error
        }
    }

    public func withConnection<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R)
        async throws -> R
    {
        try await withPooledConnection { connection in try await body(connection.sql()) }
    }

    public func withTransaction<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R)
        async throws -> R
    {
        try await withPooledConnection { connection in
            let db = connection.sql()
            try await db.raw("BEGIN").run()
            do {
                let result = try await body(db)
                try await db.raw("COMMIT").run()
                return result
            } catch {
                try? await db.raw("ROLLBACK").run()
                throw error
            }
        }
    }

    public func shutdown() async throws {
        pool.withLock { $0.runner }.cancel()
    }
}
