import ExamBellCore
import ExamBellSQL
import ExamBellTestSupport
import Foundation
import Logging
import SQLKit
import Synchronization
import Testing

/// No PostgreSQL call waits forever: a connection the server terminates, a call that overruns
/// its limit, a statement past `statement_timeout`, a caller cancelled mid-call (real
/// PostgreSQL; `PostgresExecutor`'s bounds).
@Suite("Every PostgreSQL call is bounded", .timeLimit(.minutes(4)))
struct DatabaseBoundsTests {
    /// Short bounds, so that the tests see them act.
    static var shortTimeouts: DatabaseTimeouts {
        var timeouts = DatabaseTimeouts()
        timeouts.connectionWait = .seconds(10)
        timeouts.lockWait = .seconds(1)
        timeouts.statement = .seconds(4)
        timeouts.call = .seconds(6)
        return timeouts
    }

    @Test(
        "a connection terminated mid-transaction (pg_terminate_backend) answers an error within the bound; the next call works",
        .timeLimit(.minutes(1)))
    func terminatedMidTransaction() async throws {
        let url = try await PostgresTestDatabase.freshDatabaseURL()
        try await PostgresExecutor.withExecutor(url: url, timeouts: Self.shortTimeouts, logger: EndTruthTests.quiet) { executor in
            try await PostgresExecutor.withExecutor(url: url, logger: EndTruthTests.quiet) { killer in
                let started = ContinuousClock.now
                let outcome = try await bounded("a transaction whose connection was terminated", within: .seconds(30)) {
                    do {
                        try await executor.withTransaction { db in
                            let row = try await db.raw("SELECT pg_backend_pid() AS pid").first()
                            let pid = try #require(try row?.decode(column: "pid", as: Int.self))
                            try await killer.withConnection { other in
                                try await other.raw("SELECT pg_terminate_backend(CAST(\(bind: pid) AS INTEGER))").run()
                            }
                            try await db.raw("SELECT 1").run()
                        }
                        return "committed"
                    } catch let error as StoreError {
                        return "\(ExamBellError(error).status)"
                    } catch {
                        return String(reflecting: error)
                    }
                }
                #expect(outcome == "503", "the caller is told the DB is unavailable")
                #expect(ContinuousClock.now - started < Self.shortTimeouts.callBound, "answered within the stated bound")
                try await eventually("the pool serves the next call", within: .seconds(20)) {
                    (try? await executor.withConnection { db in try await db.raw("SELECT 1").run() }) != nil
                }
            }
        }
    }

    @Test(
        "a call past its bound is answered with an error and never commits later; a long statement is stopped by PostgreSQL",
        .timeLimit(.minutes(1)))
    func overrunNeverCommits() async throws {
        let url = try await PostgresTestDatabase.freshDatabaseURL()
        try await PostgresExecutor.withExecutor(url: url, timeouts: Self.shortTimeouts, logger: EndTruthTests.quiet) { executor in
            try await executor.withConnection { db in try await db.raw("CREATE TABLE probe (n INTEGER)").run() }
            let finished = Mutex(false)
            let started = ContinuousClock.now
            let answer = try await bounded("a transaction that overruns its call bound", within: .seconds(30)) {
                do {
                    try await executor.withTransaction { db in
                        try await db.raw("INSERT INTO probe (n) VALUES (1)").run()
                        // Work that does not end in time (a stuck caller): the watchdog answers.
                        try? await Task.sleep(for: .seconds(10))
                        finished.withLock { $0 = true }
                    }
                    return "committed"
                } catch let error as StoreError {
                    return error.code
                }
            }
            #expect(answer == "service_unavailable")
            #expect(ContinuousClock.now - started < Self.shortTimeouts.callBound)
            // Long after the body gave up, the row it inserted is still not there.
            try await eventually("the abandoned body finished", within: .seconds(15)) { finished.withLock { $0 } }
            let count = try await executor.withConnection { db in
                try await db.raw("SELECT COUNT(*) AS n FROM probe").first()?.decode(column: "n", as: Int.self)
            }
            #expect(count == 0, "the call that answered an error never committed")

            let sleeping = try await bounded("a statement past statement_timeout", within: .seconds(30)) {
                do {
                    try await executor.withConnection { db in try await db.raw("SELECT pg_sleep(20)").run() }
                    return "finished"
                } catch let error as StoreError {
                    return error.message
                }
            }
            #expect(sleeping?.contains("did not") == true, "PostgreSQL's statement_timeout stopped it: \(sleeping ?? "")")
        }
    }

    @Test(
        "a cancelled caller's call is still bounded: the statement overrunning the call's limit has its connection closed and is answered 503",
        .timeLimit(.minutes(1)))
    func cancelledCallerStillBounded() async throws {
        var timeouts = Self.shortTimeouts
        timeouts.statement = .seconds(30)  // PostgreSQL would let the statement run: only the watchdog stops it
        timeouts.call = .seconds(2)
        let url = try await PostgresTestDatabase.freshDatabaseURL()
        try await PostgresExecutor.withExecutor(url: url, timeouts: timeouts, logger: EndTruthTests.quiet) { executor in
            let call = Task {
                do {
                    try await executor.withConnection { db in try await db.raw("SELECT pg_sleep(20)").run() }
                    return "finished"
                } catch let error as StoreError {
                    return error.message
                } catch {
                    return "\(type(of: error))"
                }
            }
            try await eventually("the statement runs", within: .seconds(10)) {
                let running = try? await executor.withConnection { db in
                    try await db.raw("SELECT COUNT(*) AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(20)' AND state = 'active'")
                        .first()?.decode(column: "n", as: Int.self)
                }
                return (running ?? 0) > 0
            }
            let cancelledAt = ContinuousClock.now
            call.cancel()
            let answer = try await bounded("the cancelled call's answer", within: .seconds(15)) { await call.value }
            #expect(answer == "The database did not finish within 2.0 seconds; nothing was changed.", "answered by the watchdog")
            #expect(ContinuousClock.now - cancelledAt < timeouts.call + .seconds(8), "not held until the statement ended (20 s)")
        }
    }
}
