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
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

@Suite("PostgreSQL outage", .timeLimit(.minutes(4)))
struct PostgresOutageTests {
    @Test(
        "PostgreSQL dies inside the end transaction, then is down: each end answers 503 in time and changes nothing; once it is back the first end ends it; shutdown with it down completes",
        .timeLimit(.minutes(2))
    )
    func databaseDown() async throws {
        let postgres = try await PostgresTestServer.start()
        // A lock wait longer than the test's wait for the crash: the end is inside its
        // transaction, waiting on the row, when PostgreSQL dies.
        var longLockWait = DatabaseTimeouts()
        longLockWait.lockWait = .seconds(20)
        longLockWait.statement = .seconds(25)
        longLockWait.call = .seconds(30)
        let timeouts = longLockWait
        try await PostgresExamStore.withStore(url: postgres.url, timeouts: timeouts) { store in
            let node = try await TestNode(store: store)
            try await PostgresExecutor.withExecutor(url: postgres.url, logger: EndTruthTests.quiet) { monitor in
                try await bounded("the outage scenario, and the node's graceful shutdown with PostgreSQL down", within: .seconds(100)) {
                    try await node.node.application.test(.live) { client in
                        let port = try #require(client.port)
                        let ids = try await client.makeExam("e1", candidates: 2)
                        let browser = TestBrowser(port: port, token: try await client.tokens("e1", role: "candidate", ids: ids)[0])
                        await eventually("connected") { node.node.hub.connectionCount == 1 }

                        // 1. PostgreSQL crashes while the end waits inside its transaction.
                        let lock = try await PlanRowLock.hold(url: postgres.url, examId: "e1")
                        let started = ContinuousClock.now
                        let inFlight = Task { try await client.call(.post, "/api/exams/e1/end", json: #"{"reason":"db dies"}"#) }
                        try await eventually("the end waits on the row inside its transaction") { try await PlanRowLock.waiters(monitor) > 0 }
                        await postgres.crash()
                        let refused = try await inFlight.value
                        #expect(refused.status == .serviceUnavailable)
                        #expect(try decode(ErrorBody.self, refused).error.code == "service_unavailable")
                        #expect(ContinuousClock.now - started < timeouts.callBound, "answered within the stated bound")
                        await lock.release()
                        #expect(try await node.backends.state.plan("e1")?.status == .inProgress, "the state store never said completed")
                        #expect(await browser.frames(over: .seconds(1)).isEmpty, "nobody was told")

                        // 2. Still down: the first read fails; /ready names the DB.
                        let ready = try await client.call(.get, "/ready", headers: [:])
                        #expect(ready.status == .serviceUnavailable)
                        #expect(String(buffer: ready.body).contains(#""database":"down""#))
                        let down = try await client.call(.post, "/api/exams/e1/end", json: #"{"reason":"db down"}"#)
                        #expect(down.status == .serviceUnavailable)

                        // 3. Back: the first end that reaches the DB ends it, and the browser is told once.
                        try await postgres.start()
                        var answer: EndBody?
                        let deadline = ContinuousClock.now + .seconds(30)
                        while answer == nil, ContinuousClock.now < deadline {
                            let response = try await client.call(.post, "/api/exams/e1/end", json: #"{"reason":"db back"}"#)
                            if response.status == .ok {
                                answer = try decode(EndBody.self, response)
                            } else {
                                try await Task.sleep(for: .milliseconds(200))
                            }
                        }
                        let end = try #require(answer, "an end succeeded within 30 s of PostgreSQL's restart")
                        #expect(end.result == "completed")
                        #expect(await browser.frames(atLeast: 1) == [ClusterTests().frame("e1", end.endDatetime)])
                        #expect(await browser.frames(over: .milliseconds(500)).count == 1)
                        #expect(try await client.call(.get, "/ready", headers: [:]).status == .ok)
                        let log = try await node.backends.store.auditLog(examId: "e1").filter { $0.action == "end" }
                        #expect(log.map(\.reason) == ["db back"], "the refused ends left nothing behind")
                        browser.close()

                        // 4. Down again for the node's graceful shutdown (bounded above).
                        await postgres.crash()
                    }
                }
            }
        }
    }
}
