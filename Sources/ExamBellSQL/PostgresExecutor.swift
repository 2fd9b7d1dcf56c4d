import ExamBellCore
import Foundation
import Logging
import PostgresKit
import PostgresNIO
import SQLKit

/// The DB at scale: a PostgreSQL connection pool (postgres-nio's `PostgresClient`).
public final class PostgresExecutor: SQLExecutor {
    public let dialect = SQLStoreDialect.postgres
    private let client: PostgresClient
    private let runner: Task<Void, Never>

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
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.runner = Task { await client.run() }
    }

    public func withConnection<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R)
        async throws -> R
    {
        try await client.withConnection { connection in try await body(connection.sql()) }
    }

    public func withTransaction<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R)
        async throws -> R
    {
        try await client.withConnection { connection in
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
        runner.cancel()
    }
}
