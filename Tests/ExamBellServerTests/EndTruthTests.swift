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

/// The end is true everywhere or nowhere, and no DB call waits forever: real PostgreSQL
/// (row locks, terminated connections, a crash inside the end transaction) and real Redis.
@Suite("The end is true everywhere or nowhere", .timeLimit(.minutes(4)))
struct EndTruthTests {
    /// The product's bounds but a 1 s lock wait, for a node whose end meets a locked row:
    /// everything else the node does keeps the full bounds (a loaded machine needs them).
    static var shortLockWait: DatabaseTimeouts {
        var timeouts = DatabaseTimeouts()
        timeouts.lockWait = .seconds(1)
        return timeouts
    }

    static var quiet: Logger {
        var logger = Logger(label: "test.postgres")
        logger.logLevel = .critical
        return logger
    }

    func frame(_ examId: String, _ end: String) -> String {
        #"{"type":"exam_end","examId":"\#(examId)","message":"시험이 종료되었습니다.","timestamp":"\#(end)"}"#
    }

    // MARK: An end that failed

    @Test("an end that failed claims the exam's end only after an unconfirmed COMMIT with its own time")
    func ownEndAfterFailure() {
        let mine = Timestamp.now()
        let plan = ExamPlan(examId: "e1", title: "A", status: .completed, createdAt: mine, endDatetime: mine)
        let lockWait = StoreError.unavailable("The database is busy: a row stayed locked longer than 5 s; nothing was changed.")
        let unconfirmed = StoreError.outcomeUnknown("The database did not confirm the commit.")
        // The case that answered "completed" to 4 of 100 concurrent ends: rolled back, same millisecond.
        #expect(EndExamService.ownEnd(after: lockWait, truth: plan, endDatetime: mine) == false)
        #expect(EndExamService.ownEnd(after: unconfirmed, truth: plan, endDatetime: mine) == true)
        #expect(EndExamService.ownEnd(after: unconfirmed, truth: plan, endDatetime: mine.adding(seconds: 1)) == false)
        var running = plan
        running.status = .inProgress
        running.endDatetime = nil
        #expect(EndExamService.ownEnd(after: unconfirmed, truth: running, endDatetime: mine) == nil, "not ended: the failure stands")
    }

    // MARK: The end path

    @Test(
        "exam_plan locked while an end is in flight: the end answers 503 in time, nobody is told, DB and Redis stay in progress; the next end tells everyone",
        .timeLimit(.minutes(2)))
    func rowLockedDuringEnd() async throws {
        let redis = try await RedisTestServer.start()
        defer { redis.stop() }
        let url = try await PostgresTestDatabase.freshDatabaseURL()
        try await PostgresExamStore.withStore(url: url, timeouts: Self.shortLockWait) { store in
            let test = try await TestNode(store: store, redisURL: redis.url)
            try await PostgresExecutor.withExecutor(url: url, logger: Self.quiet) { monitor in
                try await bounded("the row-lock scenario and the node's shutdown", within: .seconds(90)) {
                    try await test.node.application.test(.live) { client in
                        let port = try #require(client.port)
                        let ids = try await client.makeExam("e1", candidates: 2, proctors: 1)
                        let tokens = try await client.tokens("e1", role: "candidate", ids: ids)
                        let proctorToken = try await client.tokens("e1", role: "proctor", ids: ["e1-p1"])[0]
                        let early = TestBrowser(port: port, token: tokens[0])
                        await eventually("first browser connected") { test.node.hub.connectionCount == 1 }

                        let lock = try await PlanRowLock.hold(url: url, examId: "e1")
                        let started = ContinuousClock.now
                        let refused = Task { try await client.call(.post, "/api/exams/e1/end", json: #"{"reason":"locked"}"#) }
                        try await eventually("the end waits for the row lock") { try await PlanRowLock.waiters(monitor) > 0 }
                        // Browsers that join while the end is in flight.
                        let joiner = TestBrowser(port: port, token: tokens[1])
                        let proctor = TestBrowser(port: port, token: proctorToken)
                        await eventually("joiners connected") { test.node.hub.connectionCount == 3 }

                        let response = try await refused.value
                        #expect(response.status == .serviceUnavailable)
                        #expect(try decode(ErrorBody.self, response).error.message.contains("locked"))
                        #expect(ContinuousClock.now - started < Self.shortLockWait.callBound, "answered within the stated bound")
                        #expect(try await store.exam("e1")?.status == .inProgress, "the DB did not end it")
                        #expect(try await redis.cli("GET", "exam_plan:e1") == [#"{"status":"in_progress","end_datetime":null}"#])
                        for id in ids {
                            #expect(try await redis.cli("GET", "exam_candidate:\(id):status").first?.contains(#""status":"completed""#) == false)
                        }
                        #expect(try await redis.cli("XLEN", "queue:exam_end") == ["0"], "nothing was published")
                        for browser in [early, joiner, proctor] {
                            #expect(await browser.frames(over: .seconds(1)).isEmpty, "no browser is told of an end the DB refused")
                        }
                        #expect(try await store.auditLog(examId: "e1").filter { $0.action == "end" }.isEmpty)

                        await lock.release()
                        let end = try await client.end("e1", reason: "lock released")
                        #expect(end.result == "completed")
                        for browser in [early, joiner, proctor] {
                            #expect(await browser.frames(atLeast: 1) == [frame("e1", end.endDatetime)])
                        }
                        for browser in [early, joiner, proctor] {
                            #expect(await browser.frames(over: .milliseconds(500)).count == 1, "told exactly once")
                        }
                        #expect(try await redis.cli("GET", "exam_plan:e1") == [#"{"status":"completed","end_datetime":"\#(end.endDatetime)"}"#])
                        [early, joiner, proctor].forEach { $0.close() }
                    }
                }
            }
        }
    }

    // MARK: A lost answer to COMMIT

    @Test(
        "the end's COMMIT goes through but its answer is lost (a relay drops the connection first): 200, every browser told by the request, DB and Redis agree",
        .timeLimit(.minutes(2)))
    func lostCommitAnswerCommitted() async throws {
        try await withRelayedNode { test, relay, store, redis in
            try await test.node.application.test(.live) { client in
                let (ids, browsers) = try await Self.examWithBrowsers(client, test)

                // The COMMIT reaches PostgreSQL 800 ms after the node saw its connection die:
                // a read-back in that time sees the exam still in progress.
                relay.arm(.lateCommit(delay: .milliseconds(800)))
                let response = try await client.call(.post, "/api/exams/e1/end", json: #"{"reason":"lost answer"}"#)
                #expect(relay.fired == 1, "the end's COMMIT met the fault")
                #expect(response.status == .ok, "PostgreSQL committed the end: the request says so")
                let end = try decode(EndBody.self, response)
                #expect(end.result == "completed")
                // The outbox lease is 60 s here: a frame within 15 s came from the request
                // itself, not from the relay taking over a row whose lease ran out.
                for browser in browsers {
                    #expect(await browser.frames(atLeast: 1, within: .seconds(15)) == [frame("e1", end.endDatetime)])
                }
                for browser in browsers {
                    #expect(await browser.frames(over: .milliseconds(500)).count == 1, "told exactly once")
                }
                let plan = try #require(try await store.exam("e1"))
                #expect(plan.status == .completed && plan.endDatetime?.iso8601 == end.endDatetime, "the DB holds the end")
                #expect(try await redis.cli("GET", "exam_plan:e1") == [#"{"status":"completed","end_datetime":"\#(end.endDatetime)"}"#])
                for id in ids {
                    #expect(try await redis.cli("GET", "exam_candidate:\(id):status").first?.contains(#""status":"completed""#) == true)
                }
                #expect(try await store.auditLog(examId: "e1").filter { $0.action == "end" }.count == 1)
                browsers.forEach { $0.close() }
            }
        }
    }

    @Test(
        "the end's COMMIT never reaches PostgreSQL and the connection is lost: an error answer, nobody told, DB and Redis unchanged; the next end tells everyone",
        .timeLimit(.minutes(2)))
    func lostCommitAborted() async throws {
        try await withRelayedNode { test, relay, store, redis in
            try await test.node.application.test(.live) { client in
                let (ids, browsers) = try await Self.examWithBrowsers(client, test)

                relay.arm(.lostCommit)
                let response = try await client.call(.post, "/api/exams/e1/end", json: #"{"reason":"lost commit"}"#)
                #expect(relay.fired == 1, "the end's COMMIT met the fault")
                #expect(response.status == .serviceUnavailable)
                let error = try decode(ErrorBody.self, response).error
                #expect(error.code != "database_outcome_unknown", "PostgreSQL said aborted: the outcome is known")
                #expect(error.message.contains("nothing was changed"))
                for browser in browsers {
                    #expect(await browser.frames(over: .seconds(1)).isEmpty, "no browser is told of an end the DB rolled back")
                }
                #expect(try await store.exam("e1")?.status == .inProgress, "the DB did not end it")
                #expect(try await redis.cli("GET", "exam_plan:e1") == [#"{"status":"in_progress","end_datetime":null}"#])
                #expect(try await redis.cli("XLEN", "queue:exam_end") == ["0"], "nothing was published")
                #expect(try await store.auditLog(examId: "e1").filter { $0.action == "end" }.isEmpty)

                let end = try await client.end("e1", reason: "again")
                for browser in browsers {
                    #expect(await browser.frames(atLeast: 1) == [frame("e1", end.endDatetime)])
                }
                browsers.forEach { $0.close() }
            }
        }
    }

    /// Exam e1 running with three candidates and a proctor, each with a browser connected.
    static func examWithBrowsers(_ client: some TestClientProtocol, _ test: TestNode) async throws -> ([String], [TestBrowser]) {
        let port = try #require(client.port)
        let ids = try await client.makeExam("e1", candidates: 3, proctors: 1)
        let tokens = try await client.tokens("e1", role: "candidate", ids: ids)
        let proctorToken = try await client.tokens("e1", role: "proctor", ids: ["e1-p1"])[0]
        let browsers = (tokens + [proctorToken]).map { TestBrowser(port: port, token: $0) }
        await eventually("browsers connected") { test.node.hub.connectionCount == 4 }
        return (ids, browsers)
    }

    /// A node whose PostgreSQL connections all pass through a `TCPRelay`, on Redis,
    /// with an outbox lease far longer than any wait in the test.
    func withRelayedNode(
        _ body: @escaping @Sendable (TestNode, TCPRelay, SQLExamStore, RedisTestServer) async throws -> Void
    ) async throws {
        let redis = try await RedisTestServer.start()
        defer { redis.stop() }
        let url = try await PostgresTestDatabase.freshDatabaseURL()
        let target = try #require(URLComponents(string: url))
        let relay = try await TCPRelay.start(to: try #require(target.host), port: try #require(target.port))
        try await PostgresExamStore.withStore(url: relay.url(through: url)) { store in
            let test = try await TestNode(store: store, redisURL: redis.url, outboxLease: .seconds(60))
            try await bounded("the relayed node's scenario and its shutdown", within: .seconds(90)) {
                try await body(test, relay, store, redis)
            }
        }
        await relay.stop()
    }

    @Test(
        "acks keep last_active_time at the end time in Redis and the DB; the ack time goes to its own field and column",
        .timeLimit(.minutes(1)))
    func acksKeepEndTime() async throws {
        let redis = try await RedisTestServer.start()
        defer { redis.stop() }
        try await PostgresTestDatabase.withFreshStore { store in
            let test = try await TestNode(store: store, redisURL: redis.url, syncAfterEnd: .milliseconds(300))
            try await bounded("acks and the sync after the end", within: .seconds(50)) {
                try await test.node.application.test(.live) { client in
                    let port = try #require(client.port)
                    let ids = try await client.makeExam("e1", candidates: 3)
                    let browsers = try await client.tokens("e1", role: "candidate", ids: ids).map {
                        TestBrowser(port: port, token: $0, ackExamEnd: true)
                    }
                    await eventually("connected") { test.node.hub.connectionCount == 3 }
                    let end = try await client.end("e1")
                    let endTime = try #require(Timestamp(iso8601: end.endDatetime))
                    try await eventually("acks recorded") { try await redis.cli("HLEN", "exam_ack:e1") == ["3"] }
                    try await eventually("ack times reached the DB") {
                        try await store.candidates(examId: "e1").allSatisfy { $0.acknowledgedAt != nil }
                    }
                    for candidate in try await store.candidates(examId: "e1") {
                        #expect(candidate.lastActiveTime == endTime, "the DB keeps the end time as last activity")
                        #expect((candidate.acknowledgedAt ?? endTime) >= endTime)
                    }
                    for id in ids {
                        #expect(
                            try await redis.cli("GET", "exam_candidate:\(id):status") == [
                                #"{"status":"completed","last_active_time":"\#(end.endDatetime)"}"#
                            ])
                    }
                    browsers.forEach { $0.close() }
                }
            }
        }
    }

    @Test("bulk at DESIGN's limits: 10,000 candidates with 64-character ids and Korean names, and their 10,000 sessions, in one request each")
    func bulkAtTheLimits() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.router) { client in
            #expect(try await client.call(.post, "/api/exams", json: #"{"examId":"e1","title":"Bulk"}"#).status == .created)
            let surnames = ["김", "이", "박", "최", "정", "강", "조", "윤", "장", "임"]
            let given = ["민준", "서연", "도윤", "하은", "시우", "지유", "주원", "서윤", "예준", "지민"]
            let ids = (0..<10_000).map { index in
                let suffix = String(index)
                return String(repeating: "x", count: 64 - suffix.count - 1) + "-" + suffix
            }
            #expect(ids.allSatisfy { $0.count == 64 })
            // As clients like Python's json.dumps send it: non-ASCII escaped as \uXXXX.
            let people = ids.enumerated().map { index, id in
                let name = surnames[index % 10] + given[(index / 10) % 10]
                let escaped = name.unicodeScalars.map { String(format: "\\u%04x", $0.value) }.joined()
                return #"{"candidateId": "\#(id)", "name": "\#(escaped)"}"#
            }
            let body = #"{"candidates": [\#(people.joined(separator: ", "))]}"#
            #expect(body.utf8.count > 1 << 20, "more than the old 1 MiB limit")
            let registered = try await client.call(.post, "/api/exams/e1/candidates", json: body)
            #expect(registered.status == .ok)
            #expect(try await test.backends.store.candidateIds(examId: "e1").count == 10_000)
            let list = ids.map { "\"\($0)\"" }.joined(separator: ",")
            let sessions = try await client.call(.post, "/api/exams/e1/sessions", json: #"{"role":"candidate","ids":[\#(list)]}"#)
            #expect(sessions.status == .ok)
            #expect(try decode(SessionsBody.self, sessions).sessions.count == 10_000)

            let tooLarge = try await client.call(
                .post, "/api/exams/e1/candidates", json: #"{"candidates":[],"pad":"\#(String(repeating: "x", count: 5 << 20))"}"#
            )
            #expect(tooLarge.status == .contentTooLarge)
            #expect(try decode(ErrorBody.self, tooLarge).error.message.contains("4 MiB"), "a 413 names the limit")
        }
    }
}
