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
    private func withPooledConnection<R: Sendable>(
        _ body: @escaping @Sendable (PostgresConnection) async throws -> R
    ) async throws -> R {
        let client = pool.withLock { $0.client }
        do {
            return try await Self.withLeaseDeadline(connectionWait) { finishLease in
                try await client.withConnection { connection in
                    finishLease()
                    return try await body(connection)
                }
            }
        } catch {
            // No connection in time, or a connection-level failure: the database was (or is)
            // away, so start a fresh pool rather than wait out the old one's backoff.
            let lostConnection =
                error is NoConnectionInTime || error is ConnectionPoolError
                || (error as? PSQLError)?.code == .connectionError || (error as? PSQLError)?.code == .serverClosedConnection
            if lostConnection {
                let retired = pool.withLock { pool -> Task<Void, Never>? in
                    guard pool.client === client, ContinuousClock.now - pool.made > .seconds(1) else { return nil }
                    let old = pool.runner
                    pool = Self.makePool(configuration, logger)
                    return old
                }
                retired?.cancel()
            }
            if let late = error as? NoConnectionInTime {
                throw ExamBellError.unavailable("The database did not answer within \(late.limit); it may be down.")
            }
            throw error
        }
    }

    /// How long a caller waits for a pooled connection before being told the DB is unavailable
    /// (the pool itself keeps trying in the background).
    let connectionWait: Duration = .seconds(3)

    /// Runs `operation`, failing with `NoConnectionInTime` if it has not called `finishLease`
    /// within `limit`. Only the wait for a connection is bounded, not the work done with it.
    /// The caller is answered at the deadline even if the pool ignores the cancellation of a
    /// request still waiting for a connection (that request fails when the pool is replaced).
    static func withLeaseDeadline<R: Sendable>(
        _ limit: Duration, _ operation: @escaping @Sendable (@escaping @Sendable () -> Void) async throws -> R
    ) async throws -> R {
        let leased = LeaseFlag()
        let answer = AnswerOnce<R>()
        return try await withCheckedThrowingContinuation { continuation in
            answer.set(continuation)
            let work = Task {
                do {
                    answer.resume(.success(try await operation { leased.value.store(true, ordering: .relaxed) }))
                } catch {
                    answer.resume(.failure(error))
                }
            }
            Task {
                try? await Task.sleep(for: limit)
                if !leased.value.load(ordering: .relaxed) {
                    answer.resume(.failure(NoConnectionInTime(limit: limit)))
                    work.cancel()
                }
            }
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

/// Whether a pooled connection was handed over (set once, read by the deadline).
private final class LeaseFlag: Sendable {
    let value = Atomic<Bool>(false)
}

/// No pooled connection came within the wait: the database is likely away.
struct NoConnectionInTime: Error {
    var limit: Duration
}

/// Resumes a continuation once, whichever of the work and the deadline comes first.
private final class AnswerOnce<R: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<R, any Error>?>(nil)

    func set(_ continuation: CheckedContinuation<R, any Error>) {
        self.continuation.withLock { $0 = continuation }
    }

    func resume(_ result: Result<R, any Error>) {
        let waiting = continuation.withLock { continuation in
            defer { continuation = nil }
            return continuation
        }
        waiting?.resume(with: result)
    }
}
