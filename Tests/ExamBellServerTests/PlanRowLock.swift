import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellRuntime
import ExamBellSQL
import ExamBellServer
import ExamBellSocket
import ExamBellTestSupport
import ExamBellWeb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import SQLKit
import Synchronization
import Testing

/// Holds `SELECT … FOR UPDATE` on one `exam_plan` row, in a transaction of its own, until released.
final class PlanRowLock: Sendable {
    let holding: Task<Void, any Error>
    let releaser: AsyncStream<Void>.Continuation

    /// Takes the row in a transaction of its own, on a pool that lives as long as the
    /// transaction (until `release`).
    static func hold(url: String, examId: String) async throws -> PlanRowLock {
        var timeouts = DatabaseTimeouts()
        timeouts.call = .seconds(60)
        timeouts.statement = .seconds(60)
        let (locked, lockedContinuation) = AsyncStream<Bool>.makeStream()
        let (released, releaser) = AsyncStream<Void>.makeStream()
        let holding = Task {
            defer { lockedContinuation.finish() }
            try await PostgresExecutor.withExecutor(url: url, timeouts: timeouts, logger: EndTruthTests.quiet) { executor in
                try await executor.withTransaction { db in
                    try await db.raw("SELECT plan_id FROM exam_plan WHERE plan_id = \(bind: examId) FOR UPDATE").run()
                    lockedContinuation.yield(true)
                    for await _ in released { break }
                }
            }
        }
        var held = false
        for await value in locked {
            held = value
            break
        }
        guard held else { throw TestServerError("could not lock exam_plan \(examId): \(String(describing: await holding.result))") }
        return PlanRowLock(holding: holding, releaser: releaser)
    }

    private init(holding: Task<Void, any Error>, releaser: AsyncStream<Void>.Continuation) {
        self.holding = holding
        self.releaser = releaser
    }

    /// How many lock requests wait in the database (PostgreSQL's `pg_locks`), read through `executor`.
    static func waiters(_ executor: PostgresExecutor) async throws -> Int {
        try await executor.withConnection { db in
            try await db.raw("SELECT COUNT(*) AS n FROM pg_locks WHERE NOT granted").first()?.decode(column: "n", as: Int.self)
        } ?? 0
    }

    /// Ends the transaction (or notices it already died) and stops its pool.
    func release() async {
        releaser.finish()
        _ = await holding.result
    }
}
