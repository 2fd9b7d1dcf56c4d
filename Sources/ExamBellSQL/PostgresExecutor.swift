import ExamBellCore
import Foundation
import Logging
import NIOCore
import PostgresKit
import PostgresNIO
import SQLKit
import ServiceLifecycle
import Synchronization

/// The DB at scale: postgres-nio's `PostgresClient` pool, with every call bounded in time.
///
/// ExamBell promises that nothing waits forever and that a call answered with an error
/// changed nothing. Each call (`withConnection`, `withTransaction`) is bounded three ways:
/// - **connection wait**: a caller waits at most `DatabaseTimeouts.connectionWait` for a
///   pooled connection; its lease request is then cancelled (the pool keeps reconnecting in
///   the background with its own backoff).
/// - **on the server**: every connection starts with `statement_timeout`, `lock_timeout` and
///   `idle_in_transaction_session_timeout`, so PostgreSQL itself aborts a statement that
///   runs, or waits for a row lock, too long, and drops a transaction left open.
/// - **on the client**: a call still running `DatabaseTimeouts.call` after it got its
///   connection has that connection closed (PostgreSQL rolls back a transaction whose
///   connection closes) and answers `unavailable`. `COMMIT` is sent only while the call is
///   within its time; once sent, the call waits for its answer (bounded by the statement
///   timeout), so an error never hides a commit that happens later.
///
/// A statement on a connection that has closed fails at once: postgres-nio never answers a
/// query written to a closed channel (that was the hang of the PostgreSQL-outage test: a
/// `ROLLBACK` after the connection died waited forever).
public final class PostgresExecutor: SQLExecutor {
    public let dialect = SQLStoreDialect.postgres
    private let client: PostgresClient
    /// Whether the pool's run (`PostgresClient.run()`) is a service of the owner's group.
    private let poolIsService: Bool
    private let timeouts: DatabaseTimeouts
    private let logger: Logger

    /// Who runs the pool (`PostgresClient.run()`).
    public enum PoolRunner: Sendable {
        /// The caller's service group, through `services` (a node: the pool starts first and
        /// stops last, after every part that uses it).
        case serviceGroup
        /// `withExecutor`'s task group, for the length of its body (tools and tests).
        case scope
    }

    /// A pool for `postgres://user[:pass]@host:port/db`.
    public init(
        url: String, timeouts: DatabaseTimeouts = DatabaseTimeouts(), runner poolRunner: PoolRunner, logger: Logger
    ) throws(StoreError) {
        guard let components = URLComponents(string: url), components.scheme == "postgres" || components.scheme == "postgresql",
            let host = components.host, !host.isEmpty, let user = components.user, !user.isEmpty
        else {
            throw .invalid(code: "invalid_database_url", message: "a PostgreSQL URL looks like postgres://user[:password]@host:port/database")
        }
        let database = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: user.removingPercentEncoding ?? user,
            password: components.password?.removingPercentEncoding, database: database.isEmpty ? nil : database,
            tls: .disable
        )
        configuration.options.maximumConnections = 16
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", String(timeouts.statement.milliseconds)),
            ("lock_timeout", String(timeouts.lockWait.milliseconds)),
            ("idle_in_transaction_session_timeout", String(timeouts.call.milliseconds * 2)),
        ]
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.timeouts = timeouts
        self.logger = logger
        self.poolIsService = poolRunner == .serviceGroup
    }

    public var services: [any Service] { poolIsService ? [client] : [] }

    /// Runs `body` with an executor whose pool runs in this call's task group: the pool stops
    /// when `body` returns or throws; nothing outlives the call.
    public static func withExecutor<R: Sendable>(
        url: String, timeouts: DatabaseTimeouts = DatabaseTimeouts(), logger: Logger, _ body: (PostgresExecutor) async throws -> R
    ) async throws -> R {
        let executor = try PostgresExecutor(url: url, timeouts: timeouts, runner: .scope, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await executor.client.run() }
            defer { group.cancelAll() }
            return try await body(executor)
        }
    }

    public func withConnection<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R)
        async throws -> R
    {
        try await bounded(callLimit: timeouts.call) { connection, _ in try await body(LiveConnectionDatabase(connection)) }
    }

    public func withTransaction<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R)
        async throws -> R
    {
        try await transaction(callLimit: timeouts.call, setup: [], body)
    }

    public func withLongTransaction<R: Sendable>(
        timeLimit: Duration, _ body: @escaping @Sendable (any SQLDatabase) async throws -> R
    ) async throws -> R {
        let milliseconds = timeLimit.milliseconds
        return try await transaction(
            callLimit: timeLimit,
            setup: ["SET LOCAL lock_timeout = \(milliseconds)", "SET LOCAL statement_timeout = \(milliseconds)"], body
        )
    }

    private func transaction<R: Sendable>(
        callLimit: Duration, setup: [String], _ body: @escaping @Sendable (any SQLDatabase) async throws -> R
    ) async throws -> R {
        try await bounded(callLimit: callLimit) { connection, gate in
            let db = LiveConnectionDatabase(connection)
            var attempt = 1
            var result: R
            while true {
                try await db.raw("BEGIN").run()
                for statement in setup { try await db.raw(SQLQueryString(statement)).run() }
                do {
                    result = try await body(db)
                    break
                } catch {
                    try? await db.raw("ROLLBACK").run()
                    // PostgreSQL aborted the transaction to break a deadlock (or a serialization
                    // conflict): nothing of it applied, so it runs again, within the same call bound.
                    guard attempt < Self.retriedConflicts, Self.isRetriableConflict(error) else { throw error }
                    attempt += 1
                }
            }
            // The transaction's own id, so that a lost answer to COMMIT is settled by asking
            // PostgreSQL about this transaction, not by a read that may race the COMMIT.
            let xid = try await db.raw("SELECT CAST(pg_current_xact_id_if_assigned() AS text) AS xid").first()?
                .decode(column: "xid", as: String?.self)
            // Past its time the call has already been answered with an error: never commit then.
            guard gate.beginCommit() else { throw CallTimedOut() }
            do {
                try await db.raw("COMMIT").run()
            } catch {
                // Sent, not confirmed: every error before this point rolled the transaction
                // back, this one may hide a commit. Without an id it wrote nothing.
                guard let xid else { return result }
                switch await self.settledStatus(of: xid, within: self.timeouts.statement) {
                case .committed:
                    self.logger.warning("COMMIT answer lost; PostgreSQL says the transaction committed", metadata: ["xid": "\(xid)"])
                    return result
                case .aborted:
                    throw Self.isServerError(error)
                        ? error
                        : StoreError.unavailable("The database connection was lost before the commit; nothing was changed.")
                case nil:
                    throw StoreError.outcomeUnknown(
                        "The database did not confirm the commit and its outcome was still unknown after \(self.timeouts.statement); read the data again to see whether it changed."
                    )
                }
            }
            return result
        }
    }

    /// The outcome of a transaction whose COMMIT went out unanswered.
    enum TransactionStatus { case committed, aborted }

    /// Asks PostgreSQL, on other connections, what became of transaction `xid`
    /// (`pg_xact_status`) until it is committed or aborted; nil when it is still in progress
    /// (or the DB did not answer) at `limit`.
    func settledStatus(of xid: String, within limit: Duration) async -> TransactionStatus? {
        let deadline = ContinuousClock.now + limit
        // A cancelled caller's call has been answered already: nothing waits for this answer.
        while ContinuousClock.now < deadline, !Task.isCancelled {
            let status = try? await bounded(callLimit: .seconds(2)) { connection, _ in
                try await LiveConnectionDatabase(connection).raw("SELECT pg_xact_status(CAST(\(bind: xid) AS xid8)) AS status")
                    .first()?.decode(column: "status", as: String?.self)
            }
            switch status ?? nil {
            case "committed": return .committed
            case "aborted": return .aborted
            default: try? await Task.sleep(for: .milliseconds(20))
            }
        }
        return nil
    }

    static func isServerError(_ error: any Error) -> Bool {
        (error as? PSQLError)?.code == .server
    }

    /// Runs `operation` on a pooled connection within the bounds above; backend failures
    /// come out as `StoreError.unavailable`.
    ///
    /// One task group of two: the work (lease, then `operation`) and its watchdog. The group
    /// answers when either ends with an answer: the work's result or error, or the watchdog's
    /// timeout, after which the work ends at once (a lease request is cancelled, which the
    /// pool honours; a statement on a connection the watchdog closed fails at once).
    private func bounded<R: Sendable>(
        callLimit: Duration, _ operation: @escaping @Sendable (PostgresConnection, CallGate) async throws -> R
    ) async throws -> R {
        let gate = CallGate()
        let client = self.client
        let timeouts = self.timeouts
        let start = ContinuousClock.now
        let eventLoop = PostgresClient.defaultEventLoopGroup.any()
        return try await withThrowingTaskGroup(of: CallOutcome<R>.self) { group in
            group.addTask {
                defer { gate.finish() }
                do {
                    return .answered(
                        try await client.withConnection { connection in
                            guard gate.leased(connection) else { throw CallTimedOut() }
                            return try await operation(connection, gate)
                        })
                } catch {
                    // Failed because the watchdog closed its connection or cancelled its lease:
                    // the watchdog's answer says why.
                    if gate.snapshot.phase == .timedOut { return .watched }
                    throw Self.translate(error, timeouts)
                }
            }
            group.addTask {
                try await Self.watch(gate, from: start, callLimit: callLimit, timeouts: timeouts, on: eventLoop)
                return .watched
            }
            while let outcome = try await group.next() {
                if case .answered(let result) = outcome { return result }
            }
            throw CallTimedOut()  // unreachable: the work answers or throws
        }
    }

    /// What a task of a call's group ended with.
    private enum CallOutcome<R: Sendable>: Sendable {
        case answered(R)
        case watched
    }

    /// The watchdog of one call. No connection within `connectionWait`: 503. Still running
    /// `callLimit` after it got its connection: the connection is closed (which fails its
    /// statements; PostgreSQL rolls back) and the call answered 503. A COMMIT already sent gets
    /// the statement timeout more, then the same with "outcome unknown". Returns when the work
    /// finishes first.
    private static func watch(
        _ gate: CallGate, from start: ContinuousClock.Instant, callLimit: Duration, timeouts: DatabaseTimeouts,
        on eventLoop: any EventLoop
    ) async throws {
        while true {
            let seen = gate.snapshot
            let deadline: ContinuousClock.Instant
            switch seen.phase {
            case .finished, .timedOut: return
            case .waiting: deadline = start + timeouts.connectionWait
            case .running: deadline = (seen.leasedAt ?? start) + callLimit
            case .committing: deadline = (seen.leasedAt ?? start) + callLimit + timeouts.statement
            }
            if ContinuousClock.now < deadline {
                await gate.nextChange(after: seen.version, until: deadline, on: eventLoop)
                continue
            }
            switch seen.phase {
            case .waiting where gate.timeOutWaiting():
                throw StoreError.unavailable("The database gave no connection within \(timeouts.connectionWait); it may be down.")
            case .running:
                guard let connection = gate.timeOutRunning() else { continue }
                await closed(connection)
                throw StoreError.unavailable("The database did not finish within \(callLimit); nothing was changed.")
            case .committing:
                guard let connection = gate.timeOutCommitting() else { continue }
                await closed(connection)
                throw StoreError.outcomeUnknown(
                    "The database did not confirm the commit in time; read the exam again to see whether it changed.")
            default: continue
            }
        }
    }

    /// Closes `connection` and returns once it is closed: the work, woken by the group's
    /// cancellation, must find it closed (a statement written to a channel still closing is
    /// never answered). A channel's close completes on its event loop whatever the server does.
    private static func closed(_ connection: PostgresConnection) async {
        let closing: EventLoopFuture<Void> = connection.close()
        try? await closing.get()
    }

    /// How many times a transaction runs when PostgreSQL aborts it for a deadlock or a
    /// serialization conflict.
    static let retriedConflicts = 3

    /// Whether PostgreSQL aborted a transaction only to break a deadlock (40P01) or a
    /// serialization conflict (40001): running it again is safe.
    static func isRetriableConflict(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError, error.code == .server else { return false }
        let state = error.serverInfo?[.sqlState] ?? ""
        return state == "40P01" || state == "40001"
    }

    /// What a backend failure means to a caller: the DB is unavailable (503), or the error as it is.
    static func translate(_ error: any Error, _ timeouts: DatabaseTimeouts) -> any Error {
        switch error {
        case is StoreError, is ExamBellError, is CancellationError:
            return error
        case is CallTimedOut:
            return StoreError.unavailable("The database did not finish within \(timeouts.call); nothing was changed.")
        case is ConnectionLost, is ConnectionPoolError:
            return StoreError.unavailable("The database connection was lost.")
        case let error as PSQLError:
            switch error.code {
            case .server:
                let state = error.serverInfo?[.sqlState] ?? ""
                if state == "55P03" {
                    return StoreError.unavailable(
                        "The database is busy: a row stayed locked longer than \(timeouts.lockWait); nothing was changed.")
                }
                if state == "57014" {
                    return StoreError.unavailable(
                        "The database did not answer within \(timeouts.statement); nothing was changed.")
                }
                if state.hasPrefix("08") || state.hasPrefix("57P") || state == "25P03" {
                    return StoreError.unavailable("The database is unavailable (\(state)); nothing was changed.")
                }
                return error
            default:
                return StoreError.unavailable("The database is unavailable; nothing was changed.")
            }
        default:
            return error
        }
    }

    /// The pool stops with whoever runs it (the node's service group, `withExecutor`).
    public func shutdown() async throws {}
}
