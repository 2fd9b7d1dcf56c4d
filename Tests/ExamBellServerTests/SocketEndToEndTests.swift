import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellMemory
import ExamBellRuntime
import ExamBellServer
import ExamBellSocket
import ExamBellTestSupport
import ExamBellWeb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The whole scenario through a live server and real WebSocket clients.
@Suite("End to end over WebSockets", .timeLimit(.minutes(10)))
struct SocketEndToEndTests {
    @Test("50 candidates and 2 proctors all receive exam_end with the response's end time, and acks are counted")
    func broadcast() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let candidates = try await client.makeExam("e1", candidates: 50, proctors: 2)
            let candidateTokens = try await client.tokens("e1", role: "candidate", ids: candidates)
            let proctorTokens = try await client.tokens("e1", role: "proctor", ids: ["e1-p1", "e1-p2"])
            let browsers =
                candidateTokens.map { TestBrowser(port: port, token: $0, ackExamEnd: true) }
                + proctorTokens.map { TestBrowser(port: port, token: $0) }
            await eventually("52 browsers connected") { test.node.hub.connectionCount == 52 }
            try await eventually("presence published") {
                String(buffer: try await client.call(.get, "/api/exams/e1").body).contains(#""connected":{"candidates":50,"proctors":2}"#)
            }

            let end = try await client.end("e1")
            #expect(end.result == "completed")
            for browser in browsers {
                let frames = await browser.frames(atLeast: 1)
                #expect(frames == [expectedFrame("e1", end.endDatetime)])
            }
            try await eventually("50 acks counted") {
                String(buffer: try await client.call(.get, "/api/exams/e1").body).contains(#""acknowledged":50"#)
            }
            let roster = String(
                buffer: try await client.call(.get, "/api/exams/e1/roster", headers: [.authorization: "Bearer \(proctorTokens[0])"]).body)
            #expect(!roster.contains(#""acknowledged":false"#))
            browsers.forEach { $0.close() }
        }
    }

    @Test(
        "100 concurrent ends make one transition, one queue entry, one audit row and one broadcast",
        arguments: TestNode.engines
    )
    func concurrentEnds(_ engines: String) async throws {
        try await TestNode.on(engines) { test in
            try await test.node.application.test(.live) { client in
                let port = try #require(client.port)
                let ids = try await client.makeExam("e1", candidates: 3)
                let browser = TestBrowser(port: port, token: try await client.tokens("e1", role: "candidate", ids: [ids[0]])[0])
                await eventually("connected") { test.node.hub.connectionCount == 1 }
                // Each request on a connection of its own, so that they really race.
                let results = try await withThrowingTaskGroup(of: EndBody.self) { group in
                    for _ in 0..<100 {
                        group.addTask {
                            let (status, body) = try await callOnOwnConnection(port: port, "POST", "/api/exams/e1/end", json: #"{"reason":"race"}"#)
                            #expect(status == 200)
                            return try JSONDecoder().decode(EndBody.self, from: Data(body.utf8))
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(results.filter { $0.result == "completed" }.count == 1)
                #expect(results.filter { $0.result == "already_completed" }.count == 99)
                #expect(Set(results.map(\.endDatetime)).count == 1, "every answer carries the one end time")
                #expect(try await test.publishedEntries().count == 1)
                #expect(try await test.backends.store.auditLog(examId: "e1").filter { $0.action == "end" }.count == 1)
                let end = try #require(Timestamp(iso8601: results[0].endDatetime))
                #expect(try await test.backends.state.plan("e1")?.endDatetime == end, "the state store holds the winner's time")
                let candidates = try await test.backends.state.candidates(ids)
                #expect(candidates.count == 3 && candidates.values.allSatisfy { $0.status == .completed }, "DB and state store agree")
                #expect(try await test.backends.store.candidateCounts(examId: "e1") == [.completed: 3], "the answer came once the rows held the end")
                let frames = await browser.frames(atLeast: 1)
                #expect(frames == [expectedFrame("e1", results[0].endDatetime)])
                #expect(await browser.frames(over: .seconds(1)).count == 1, "told once over the whole window")
                browser.close()
            }
        }
    }

    @Test("an end held between its commit and its delivery past the row's lease is published once: the node's own relay leaves it to the request")
    func slowRequestOutlivesItsLease() async throws {
        // The request sleeps after its commit for 2.5 leases while the relay looks every 200 ms:
        // before the fix the relay claimed the row once the lease ran out and published it beside
        // the request (CI: 100 ends queued on one SQLite connection did the same under load).
        let faults = FaultPoints { point in
            if point == .afterEndCommit { try? await Task.sleep(for: .milliseconds(2500)) }
        }
        let test = try await TestNode(outboxLease: .seconds(1), faults: faults)
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let ids = try await client.makeExam("e1", candidates: 2)
            let browser = TestBrowser(port: port, token: try await client.tokens("e1", role: "candidate", ids: [ids[0]])[0])
            await eventually("connected") { test.node.hub.connectionCount == 1 }
            let end = try await client.end("e1")
            #expect(end.result == "completed")
            #expect(await browser.frames(atLeast: 1) == [expectedFrame("e1", end.endDatetime)])
            #expect(try await test.publishedEntries().count == 1, "one queue entry for the end")
            #expect(try await test.backends.store.outboxBacklog() == 0, "the request marked its row")
            // Two more leases and relay passes: nothing else is published.
            try await Task.sleep(for: .seconds(2))
            #expect(try await test.publishedEntries().isEmpty)
            browser.close()
        }
    }

    @Test("a browser connecting after the end is told at once")
    func lateJoiner() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let ids = try await client.makeExam("e1", candidates: 1, proctors: 1)
            let end = try await client.end("e1")
            let candidate = TestBrowser(port: port, token: try await client.tokens("e1", role: "candidate", ids: ids)[0])
            let proctor = TestBrowser(port: port, token: try await client.tokens("e1", role: "proctor", ids: ["e1-p1"])[0])
            #expect(await candidate.frames(atLeast: 1) == [expectedFrame("e1", end.endDatetime)])
            #expect(await proctor.frames(atLeast: 1) == [expectedFrame("e1", end.endDatetime)])
            candidate.close()
            proctor.close()
        }
    }

    @Test("a browser of exam A hears nothing when exam B ends")
    func isolation() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let a = try await client.makeExam("A", candidates: 1)
            let b = try await client.makeExam("B", candidates: 1)
            let browserA = TestBrowser(port: port, token: try await client.tokens("A", role: "candidate", ids: a)[0])
            let browserB = TestBrowser(port: port, token: try await client.tokens("B", role: "candidate", ids: b)[0])
            await eventually("connected") { test.node.hub.connectionCount == 2 }
            let endB = try await client.end("B")
            #expect(await browserB.frames(atLeast: 1) == [expectedFrame("B", endB.endDatetime)])
            let endA = try await client.end("A")
            #expect(await browserA.frames(atLeast: 1) == [expectedFrame("A", endA.endDatetime)], "A's first frame is A's own end")
            browserA.close()
            browserB.close()
        }
    }

    @Test("forged, expired and malformed tokens are refused; a token reaches only its own exam")
    func refusedTokens() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            _ = try await client.makeExam("A", candidates: 1, proctors: 1)
            _ = try await client.makeExam("B", candidates: 1, proctors: 1)
            let forger = try await SessionTokens(secret: "another-secret-of-enough-length!!", lifetime: .seconds(60))
            let forged = try await forger.issue(subject: "A-c1", role: .candidate, examId: "A")
            let expired = try await test.node.sessions.issue(
                subject: "A-c1", role: .candidate, examId: "A", expiry: Date().addingTimeInterval(-60)
            )
            for token in [forged, expired, "not-a-token", ""] {
                let browser = TestBrowser(port: port, token: token)
                let outcome = await browser.result()
                guard case .failure = outcome else {
                    Issue.record("token \(token.prefix(12))… was accepted: \(String(describing: outcome))")
                    continue
                }
            }
            #expect(test.node.hub.connectionCount == 0)
            // A proctor of exam B cannot read exam A's roster; a candidate cannot act as a proctor.
            let proctorB = try await client.tokens("B", role: "proctor", ids: ["B-p1"])[0]
            let candidateA = try await client.tokens("A", role: "candidate", ids: ["A-c1"])[0]
            #expect(try await client.call(.get, "/api/exams/A/roster", headers: [.authorization: "Bearer \(proctorB)"]).status == .forbidden)
            #expect(try await client.call(.get, "/api/exams/A/roster", headers: [.authorization: "Bearer \(candidateA)"]).status == .forbidden)
            #expect(try await client.call(.get, "/api/exams/A/roster", headers: [.authorization: "Bearer \(expired)"]).status == .unauthorized)
        }
    }

    @Test("a socket node at its connection limit refuses one more browser, clearly")
    func connectionLimit() async throws {
        let test = try await TestNode(maxConnections: 2)
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let ids = try await client.makeExam("e1", candidates: 3)
            let tokens = try await client.tokens("e1", role: "candidate", ids: ids)
            let first = [TestBrowser(port: port, token: tokens[0]), TestBrowser(port: port, token: tokens[1])]
            await eventually("two connected") { test.node.hub.connectionCount == 2 }
            let refused = TestBrowser(port: port, token: tokens[2])
            guard case .failure = await refused.result() else {
                Issue.record("a third browser was accepted")
                return
            }
            #expect(test.node.hub.connectionCount == 2)
            // Why, in plain HTTP: the same request without the handshake gets the reason.
            let full = try await client.call(.get, "/ws?token=\(tokens[2])", headers: [:])
            #expect(full.status == .serviceUnavailable)
            #expect(try decode(ErrorBody.self, full).error.code == "socket_node_full")
            first.forEach { $0.close() }
            await eventually("both left") { test.node.hub.connectionCount == 0 }
            let noHandshake = try await client.call(.get, "/ws?token=\(tokens[2])", headers: [:])
            #expect(try decode(ErrorBody.self, noHandshake).error.code == "websocket_required")
            let badToken = try await client.call(.get, "/ws?token=forged", headers: [:])
            #expect(badToken.status == .unauthorized)
        }
    }

    @Test("after a restart on the same data directory the exam is still completed, and late joiners are told")
    func restart() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("exambell-\(UUID().uuidString)/exambell.sqlite").path
        let first = try await TestNode(databasePath: path)
        let (end, token) = try await first.node.application.test(.router) { client in
            let ids = try await client.makeExam("e1", candidates: 2)
            return (try await client.end("e1"), try await client.tokens("e1", role: "candidate", ids: [ids[0]])[0])
        }
        try await first.backends.store.shutdown()

        let second = try await TestNode(databasePath: path)
        try await second.node.application.test(.live) { client in
            let exam = String(buffer: try await client.call(.get, "/api/exams/e1").body)
            #expect(exam.contains(#""status":"completed""#))
            #expect(exam.contains(#""endDatetime":"\#(end.endDatetime)""#))
            // The new process's state store starts empty; final sync rewrites it from the DB.
            try await eventually("state store rebuilt") { try await second.backends.state.plan("e1")?.status == .completed }
            let browser = TestBrowser(port: try #require(client.port), token: token)
            #expect(await browser.frames(atLeast: 1) == [expectedFrame("e1", end.endDatetime)])
            browser.close()
        }
        try await second.backends.store.shutdown()
    }
}
