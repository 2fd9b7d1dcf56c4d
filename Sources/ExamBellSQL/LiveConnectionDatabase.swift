import Logging
import NIOCore
import PostgresKit
import PostgresNIO
import SQLKit
import Synchronization

/// `SQLDatabase` over one pooled connection whose statements fail at once when the connection
/// has closed (postgres-nio would never answer them).
struct LiveConnectionDatabase: SQLDatabase {
    let connection: PostgresConnection
    let base: any SQLDatabase

    init(_ connection: PostgresConnection) {
        self.connection = connection
        self.base = connection.sql()
    }

    var logger: Logger { base.logger }
    var eventLoop: any EventLoop { base.eventLoop }
    var version: (any SQLDatabaseReportedVersion)? { base.version }
    var dialect: any SQLDialect { base.dialect }
    var queryLogLevel: Logger.Level? { base.queryLogLevel }

    /// The check and the query's write happen in one turn of the connection's event loop:
    /// postgres-nio writes a query without a promise, so a query written to a channel that
    /// closed before the write is never answered. On the loop, either the channel has closed
    /// (the statement fails here) or the write reaches the connection's handler first (which
    /// fails it when the channel closes).
    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) -> EventLoopFuture<Void> {
        let connection = self.connection
        let base = self.base
        return connection.eventLoop.flatSubmit {
            guard !connection.isClosed else { return connection.eventLoop.makeFailedFuture(ConnectionLost()) }
            return base.execute(sql: query, onRow)
        }
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) async throws {
        let written: EventLoopFuture<Void> = execute(sql: query, onRow)
        try await written.get()
    }

    func withSession<R>(_ closure: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await closure(self)
    }
}
