import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellMemory
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
import Synchronization
import Testing

/// Session tokens close with their exam (issue 15: "tokens live 12 hours and outlive their exam").
@Suite("Session closing", .timeLimit(.minutes(10)))
struct SessionClosingTests {
    /// A clock the test moves, and a lookup that counts its calls and answers what it is set to.
    final class Fixture: Sendable {
        let now = Mutex(Timestamp(secondsSince1970: 1_000_000))
        let end = Mutex<Timestamp?>(nil)
        let failing = Mutex(false)
        let calls = Atomic(0)

        func closing(closeAfter: Duration = .seconds(3600), recheck: Duration = .seconds(3600)) -> SessionClosing {
            SessionClosing(
                closeAfter: closeAfter, recheck: recheck, logger: Self.quiet, now: { self.now.withLock { $0 } },
                lookup: { _ in
                    self.calls.add(1, ordering: .relaxed)
                    if self.failing.withLock({ $0 }) { throw ExamBellError.unavailable("the state store is away") }
                    return self.end.withLock { $0 }
                }
            )
        }

        static let quiet: Logger = {
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            return logger
        }()

        func advance(_ seconds: Int64) { now.withLock { $0 = $0.adding(seconds: seconds) } }
    }

    static func closedCode(_ closing: SessionClosing, _ examId: String = "e1") async -> String? {
        do {
            try await closing.check(examId: examId)
            return nil
        } catch {
            #expect(error.status == 401)
            return error.code
        }
    }

    @Test("open while the exam runs and for closeAfter after its end; closed (401 session_closed) from then on")
    func window() async throws {
        let fixture = Fixture()
        let closing = fixture.closing(recheck: .zero)
        #expect(await Self.closedCode(closing) == nil, "running")
        fixture.end.withLock { $0 = fixture.now.withLock { $0 } }
        #expect(await Self.closedCode(closing) == nil, "just ended")
        fixture.advance(3599)
        #expect(await Self.closedCode(closing) == nil, "a second before the close")
        fixture.advance(1)
        #expect(await Self.closedCode(closing) == "session_closed")
        #expect(await Self.closedCode(closing, "e2") == "session_closed", "the lookup answers the same end for every exam here")
    }

    @Test("a whole node's browsers asking at once cost one lookup; an end once seen is never asked again")
    func oneLookup() async throws {
        let fixture = Fixture()
        let closing = fixture.closing()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<200 { group.addTask { _ = await Self.closedCode(closing) } }
        }
        #expect(fixture.calls.load(ordering: .relaxed) == 1, "not ended: asked once, then kept for the recheck time")

        let ended = Fixture()
        ended.end.withLock { $0 = Timestamp(secondsSince1970: 0) }
        let closingEnded = ended.closing(recheck: .zero)
        for _ in 0..<10 { #expect(await Self.closedCode(closingEnded) == "session_closed") }
        #expect(ended.calls.load(ordering: .relaxed) == 1, "an end is final")
    }

    @Test("an exam not ended is asked again after the recheck time; a lookup that fails leaves the session open")
    func recheckAndFailure() async throws {
        let fixture = Fixture()
        fixture.failing.withLock { $0 = true }
        let closing = fixture.closing(recheck: .zero)
        #expect(await Self.closedCode(closing) == nil, "a backend outage does not log browsers out")
        fixture.failing.withLock { $0 = false }
        fixture.end.withLock { $0 = Timestamp(secondsSince1970: 0) }
        #expect(await Self.closedCode(closing) == "session_closed", "asked again, it has ended")
        #expect(fixture.calls.load(ordering: .relaxed) == 2)
    }

    @Test("the lookups a node uses: the DB's plan (web) and the state store's plan key (socket) give the end once completed")
    func lookups() async throws {
        let store = try await SQLiteExamStore.open(path: ":memory:", logger: Fixture.quiet)
        let state = MemoryStateStore()
        let lookups = [SessionClosing.ends(in: store), SessionClosing.ends(in: state)]
        _ = try await store.createExam(examId: "e1", title: "T", actor: "test", at: .now())
        let plan = try await store.startExam(examId: "e1", actor: "test", at: .now())
        try await state.mirror(plan, candidates: [])
        for lookup in lookups {
            #expect(try await lookup("e1") == nil, "not ended")
            #expect(try await lookup("missing") == nil)
        }
        let end = Timestamp(secondsSince1970: 1_700_000_000)
        _ = try await store.endExam(examId: "e1", at: end, actor: "test", reason: "test", leaseUntil: end)
        try await state.writeEnded(examId: "e1", at: end)
        for lookup in lookups { #expect(try await lookup("e1") == end) }
    }

    @Test("after the window every browser call, ticket and socket handshake of the ended exam gets 401 session_closed; other exams go on")
    func node() async throws {
        let test = try await TestNode(answerGraceSeconds: 0) { $0.sessionCloseAfter = .seconds(1) }
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let ended = try await client.makeExam("e1", candidates: 1, proctors: 1)
            let running = try await client.makeExam("e2", candidates: 1)
            let candidate = try await client.tokens("e1", role: "candidate", ids: ended)[0]
            let proctor = try await client.tokens("e1", role: "proctor", ids: ["e1-p1"])[0]
            let other = try await client.tokens("e2", role: "candidate", ids: running)[0]
            func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)", .contentType: "application/json"] }
            #expect(try await client.call(.get, "/api/session", headers: bearer(candidate)).status == .ok)
            let ticket = try decode(TicketBody.self, try await client.call(.post, "/api/socket-ticket", headers: bearer(candidate)))

            _ = try await client.end("e1")
            try await eventually("the session closed") {
                try await client.call(.get, "/api/session", headers: bearer(candidate)).status == .unauthorized
            }
            let calls: [(HTTPRequest.Method, String, String, String?)] = [
                (.get, "/api/session", candidate, nil), (.get, "/api/answers", candidate, nil),
                (.put, "/api/answers", candidate, #"{"answers":{"1":"1"}}"#), (.post, "/api/hand-in", candidate, nil),
                (.get, "/api/announcements", candidate, nil), (.post, "/api/socket-ticket", candidate, nil),
                (.get, "/api/session", proctor, nil), (.get, "/api/exams/e1/roster", proctor, nil),
            ]
            for (method, path, token, body) in calls {
                let answer = try await client.call(method, path, json: body, headers: bearer(token))
                #expect(answer.status == .unauthorized, "\(method) \(path)")
                #expect(String(buffer: answer.body).contains(#""code":"session_closed""#), "\(method) \(path): \(String(buffer: answer.body))")
            }
            for query in ["token=\(candidate)", "ticket=\(ticket.ticket)"] {
                let refused = try await RawWebSocket.refusal(port: port, query: query)
                #expect(refused.head.hasPrefix("HTTP/1.1 401"), "\(refused.head)")
                #expect(refused.body.contains(#""code":"session_closed""#), "\(refused.body)")
            }
            // The operator still sees the exam; another exam's browsers go on.
            #expect(try await client.call(.get, "/api/exams/e1/roster").status == .ok)
            #expect(try await client.call(.get, "/api/session", headers: bearer(other)).status == .ok)
            let socket = try await RawWebSocket(port: port, token: other)
            socket.close()
        }
    }

    @Test("serve refuses a close window no longer than the answer grace window, and says why")
    func windowLongerThanGrace() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("exambell-closing-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = TestProcess(
            arguments: [
                try TestProcess.exambellBinary(), "serve", "--port", String(try RedisTestServer.freePort()),
                "--data-dir", directory.appendingPathComponent("data").path, "--answer-grace", "10", "--session-close-after", "10",
            ],
            environment: [:], logPath: directory.appendingPathComponent("serve.log").path
        )
        try process.start()
        defer { process.stop() }
        let status = await process.exitStatus(within: .seconds(60))
        #expect(status != nil && status != 0, "\(process.log)")
        #expect(process.log.contains("must be longer than --answer-grace"), "\(process.log)")
    }

    @Test("a socket node forgets an ended exam's empty room once its sessions closed, and not while a browser is in it")
    func roomsForgotten() async throws {
        let test = try await TestNode(answerGraceSeconds: 0) { $0.sessionCloseAfter = .seconds(1) }
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let ids = try await client.makeExam("e1", candidates: 2)
            let tokens = try await client.tokens("e1", role: "candidate", ids: ids)
            let staying = try await RawWebSocket(port: port, token: tokens[0])
            let leaving = try await RawWebSocket(port: port, token: tokens[1])
            await eventually("both joined") { test.node.hub.connectionCount == 2 }
            _ = try await client.end("e1")
            leaving.close()
            await eventually("one left") { test.node.hub.connectionCount == 1 }
            // Well past the close (1 s) and many presence passes: a browser still holds the room.
            try await eventually("the sessions closed") {
                try await client.call(.get, "/api/session", headers: [.authorization: "Bearer \(tokens[0])"]).status == .unauthorized
            }
            #expect(test.node.hub.roomCount == 1)
            staying.close()
            await eventually("the empty, closed room forgotten") { test.node.hub.roomCount == 0 }
            let metrics = String(buffer: try await client.call(.get, "/metrics", headers: [:]).body)
            #expect(metrics.contains("exambell_socket_rooms 0"), "\(metrics)")
        }
    }
}
