import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
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

/// Every HTTP error code of the API, with the JSON error envelope.
@Suite("HTTP API", .timeLimit(.minutes(10)))
struct HTTPAPITests {
    func expectError(
        _ response: TestResponse, _ status: HTTPResponse.Status, _ code: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        #expect(response.status == status, sourceLocation: sourceLocation)
        #expect(response.headers[.contentType]?.hasPrefix("application/json") == true, sourceLocation: sourceLocation)
        let body = try decode(ErrorBody.self, response)
        #expect(body.error.code == code, sourceLocation: sourceLocation)
        #expect(!body.error.message.isEmpty, sourceLocation: sourceLocation)
    }

    @Test("401 without or with a wrong admin token")
    func unauthorized() async throws {
        let app = try await TestNode().node.application
        try await app.test(.router) { client in
            try expectError(try await client.call(.get, "/api/exams", headers: [:]), .unauthorized, "unauthorized")
            try expectError(
                try await client.call(.get, "/api/exams", headers: [.authorization: "Bearer wrong"]), .unauthorized, "unauthorized"
            )
            try expectError(
                try await client.call(.post, "/api/exams/e1/end", headers: [.authorization: "Basic abc"]), .unauthorized, "unauthorized"
            )
        }
    }

    @Test("400 for bad JSON, missing fields, bad ids, bad batches")
    func badRequests() async throws {
        let app = try await TestNode().node.application
        try await app.test(.router) { client in
            try expectError(try await client.call(.post, "/api/exams", json: "{not json"), .badRequest, "invalid_json")
            try expectError(try await client.call(.post, "/api/exams", json: #"{"title":"x"}"#), .badRequest, "invalid_json")
            try expectError(try await client.call(.post, "/api/exams"), .badRequest, "invalid_json")
            try expectError(try await client.call(.post, "/api/exams", json: #"{"examId":"bad id","title":"x"}"#), .badRequest, "invalid_id")
            try expectError(try await client.call(.post, "/api/exams", json: #"{"examId":"e1","title":"  "}"#), .badRequest, "invalid_title")
            try expectError(try await client.call(.get, "/api/exams/" + String(repeating: "x", count: 65)), .badRequest, "invalid_id")
            _ = try await client.makeExam("e1", candidates: 1, start: false)
            try expectError(
                try await client.call(.post, "/api/exams/e1/candidates", json: #"{"candidates":[{"candidateId":"a:b","name":"x"}]}"#),
                .badRequest, "invalid_id"
            )
            try expectError(
                try await client.call(.post, "/api/exams/e1/candidates", json: #"{"candidates":[{"candidateId":"ok"}]}"#),
                .badRequest, "invalid_json"
            )
            try expectError(try await client.call(.post, "/api/exams/e1/candidates", json: #"{"candidates":[]}"#), .badRequest, "invalid_batch")
            try expectError(
                try await client.call(
                    .post, "/api/exams/e1/candidates",
                    json: #"{"candidates":[{"candidateId":"d","name":"x"},{"candidateId":"d","name":"y"}]}"#
                ), .badRequest, "duplicate_id"
            )
            let tooMany = (0...10_000).map { #"{"candidateId":"m\#($0)","name":"n"}"# }.joined(separator: ",")
            try expectError(
                try await client.call(.post, "/api/exams/e1/candidates", json: #"{"candidates":[\#(tooMany)]}"#), .badRequest, "invalid_batch"
            )
            try expectError(
                try await client.call(.post, "/api/exams/e1/sessions", json: #"{"role":"judge","ids":["e1-c1"]}"#), .badRequest, "invalid_role"
            )
            try expectError(
                try await client.call(.post, "/api/exams/e1/sessions", json: #"{"role":"candidate","ids":["nobody"]}"#),
                .badRequest, "unknown_ids"
            )
            try expectError(
                try await client.call(.post, "/api/exams/e1/end", json: #"{"reason":42}"#), .badRequest, "invalid_json"
            )
            let exam = try await client.call(.get, "/api/exams/e1")
            #expect(String(buffer: exam.body).contains(#""status":"scheduled""#), "refused requests changed nothing")
        }
    }

    @Test("404 for unknown exams and routes")
    func notFound() async throws {
        let app = try await TestNode().node.application
        try await app.test(.router) { client in
            try expectError(try await client.call(.get, "/api/exams/nope"), .notFound, "exam_not_found")
            try expectError(try await client.call(.post, "/api/exams/nope/start"), .notFound, "exam_not_found")
            try expectError(try await client.call(.post, "/api/exams/nope/end"), .notFound, "exam_not_found")
            try expectError(
                try await client.call(.post, "/api/exams/nope/candidates", json: #"{"candidates":[{"candidateId":"a","name":"b"}]}"#),
                .notFound, "exam_not_found"
            )
            try expectError(try await client.call(.get, "/api/nothing-here"), .notFound, "not_found")
        }
    }

    @Test("409 for actions the exam's state does not allow")
    func conflicts() async throws {
        let app = try await TestNode().node.application
        try await app.test(.router) { client in
            _ = try await client.makeExam("e1", candidates: 2, start: false)
            try expectError(try await client.call(.post, "/api/exams", json: #"{"examId":"e1","title":"again"}"#), .conflict, "exam_exists")
            try expectError(try await client.call(.post, "/api/exams/e1/end"), .conflict, "invalid_state")
            #expect(try await client.call(.post, "/api/exams/e1/start").status == .ok)
            try expectError(try await client.call(.post, "/api/exams/e1/start"), .conflict, "invalid_state")
            _ = try await client.makeExam("e2", candidates: 0, start: false)
            try expectError(
                try await client.call(.post, "/api/exams/e2/candidates", json: #"{"candidates":[{"candidateId":"e1-c1","name":"x"}]}"#),
                .conflict, "candidate_in_other_exam"
            )
            _ = try await client.end("e1")
            try expectError(
                try await client.call(.post, "/api/exams/e1/candidates", json: #"{"candidates":[{"candidateId":"z","name":"x"}]}"#),
                .conflict, "invalid_state"
            )
        }
    }

    @Test("end: 200 completed, then 200 already_completed with the original end time")
    func endIsIdempotent() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.router) { client in
            _ = try await client.makeExam("e1", candidates: 3)
            let first = try await client.end("e1", reason: "time is up")
            #expect(first.result == "completed")
            #expect(first.status == "completed")
            #expect(Timestamp(iso8601: first.endDatetime) != nil)
            let second = try await client.end("e1", reason: "again")
            #expect(second.result == "already_completed")
            #expect(second.endDatetime == first.endDatetime)
            #expect(try await test.publishedEntries().count == 1, "one queue entry, no second broadcast")
            let exam = String(buffer: try await client.call(.get, "/api/exams/e1").body)
            #expect(exam.contains(#""completed":3"#))
            #expect(exam.contains(#""endReason":"time is up""#))
            // The end time is one value everywhere: DB, state store, queue.
            let end = Timestamp(iso8601: first.endDatetime)!
            #expect(try await test.backends.store.exam("e1")?.endDatetime == end)
            #expect(try await test.backends.state.plan("e1") == PlanStateValue(status: .completed, endDatetime: end))
            #expect(
                try await test.backends.state.candidates(["e1-c1", "e1-c2", "e1-c3"]).values.allSatisfy {
                    $0 == CandidateStateValue(status: .completed, lastActiveTime: end)
                })
        }
    }

    @Test("list and session info")
    func listAndSession() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.router) { client in
            _ = try await client.makeExam("e1", candidates: 2, proctors: 1)
            let list = String(buffer: try await client.call(.get, "/api/exams").body)
            #expect(list.contains(#""examId":"e1""#))
            let sessions = try decode(
                SessionsBody.self,
                try await client.call(.post, "/api/exams/e1/sessions", json: #"{"role":"candidate","ids":["e1-c1"]}"#)
            ).sessions
            #expect(sessions.first?.socketUrl == "ws://127.0.0.1:0/ws?token=\(sessions[0].token)")
            #expect(sessions.first?.pageUrl.hasPrefix("http://127.0.0.1:0/candidate#token=") == true)
            let info = try await client.call(.get, "/api/session", headers: [.authorization: "Bearer \(sessions[0].token)"])
            #expect(String(buffer: info.body).contains(#""role":"candidate""#))
            try expectError(try await client.call(.get, "/api/session", headers: [.authorization: "Bearer forged"]), .unauthorized, "unauthorized")
        }
    }

    @Test("/health and /ready")
    func health() async throws {
        let app = try await TestNode().node.application
        try await app.test(.router) { client in
            #expect(try await client.call(.get, "/health", headers: [:]).status == .ok)
            let ready = try await client.call(.get, "/ready", headers: [:])
            #expect(ready.status == .ok)
            #expect(String(buffer: ready.body) == #"{"database":"ok","stateStore":"ok","status":"ready"}"#)
        }
    }

    @Test("pages are served with security headers")
    func pages() async throws {
        let app = try await TestNode().node.application
        try await app.test(.router) { client in
            for path in ["/candidate", "/proctor", "/admin", "/static/socket.js"] {
                let response = try await client.call(.get, path, headers: [:])
                #expect(response.status == .ok, "\(path)")
                #expect(response.headers[.contentSecurityPolicy]?.contains("frame-ancestors 'none'") == true)
            }
            let page = String(buffer: try await client.call(.get, "/candidate", headers: [:]).body)
            #expect(!page.contains("<script>"), "no inline script")
        }
    }
}

@Suite("Session secret", .timeLimit(.minutes(10)))
struct SessionSecretTests {
    @Test("a session secret shorter than 32 bytes is refused with a clear error, not a crash")
    func shortSecret() async throws {
        await #expect(throws: ExamBellError.self) { _ = try await TestNode(sessionSecret: "too-short") }
        let accepted = try await SessionTokens(secret: String(repeating: "k", count: 32), lifetime: .seconds(60))
        let token = try await accepted.issue(subject: "c1", role: .candidate, examId: "e1")
        #expect(try await accepted.verify(token) == Session(subject: "c1", role: .candidate, examId: "e1"))
    }
}

@Suite("exambell end", .timeLimit(.minutes(10)))
struct EndCommandTests {
    @Test("ends an exam through the API and prints the result; a wrong token or exam is a clear error")
    func endCommand() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            _ = try await client.makeExam("e1", candidates: 1)
            let directory = FileManager.default.temporaryDirectory.path
            func run(_ arguments: [String]) async throws -> (Bool, String) {
                let logPath = "\(directory)/exambell-end-\(UUID().uuidString).log"
                defer { try? FileManager.default.removeItem(atPath: logPath) }
                let process = TestProcess(
                    arguments: [try TestProcess.exambellBinary(), "end"] + arguments, environment: [:], logPath: logPath
                )
                try process.start()
                let succeeded = (try? await process.wait(within: .seconds(60))) != nil
                return (succeeded, process.log)
            }
            let web = ["--web-url", "http://127.0.0.1:\(port)"]
            let ended = try await run(["e1", "--admin-token", TestNode.adminToken, "--reason", "from the CLI"] + web)
            #expect(ended.0)
            #expect(ended.1.contains("Exam e1 ended now: status completed"))
            #expect(try await test.backends.store.exam("e1")?.endReason == "from the CLI")
            let again = try await run(["e1", "--admin-token", TestNode.adminToken] + web)
            #expect(again.1.contains("had already ended"))
            let wrongToken = try await run(["e1", "--admin-token", "nope"] + web)
            #expect(!wrongToken.0)
            #expect(wrongToken.1.contains("401 unauthorized"))
            let unknown = try await run(["zz", "--admin-token", TestNode.adminToken] + web)
            #expect(!unknown.0)
            #expect(unknown.1.contains("404 exam_not_found"))
        }
    }
}
