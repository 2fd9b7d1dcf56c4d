import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellRuntime
import ExamBellServer
import ExamBellSocket
import ExamBellWeb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The answer sheet over HTTP (`/api/answers`) and the exam-day fields pages read.
@Suite("Answers API", .timeLimit(.minutes(10)))
struct AnswersAPITests {
    struct AnswersBody: Decodable {
        var status: String
        var answers: [String: String]
    }

    struct SaveBody: Decodable {
        var saved: Int
        var late: Bool
    }

    struct SessionInfo: Decodable {
        var examId: String
        var choiceItems: Int
        var shortItems: Int
        var scheduledEndDatetime: String?
        var serverTimeMs: Int64
    }

    func session(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)", .contentType: "application/json"] }

    func errorCode(_ response: TestResponse) throws -> String { try decode(ErrorBody.self, response).error.code }

    @Test("a candidate saves and reads back answers; bad answers are refused whole with 400")
    func saveAndRead() async throws {
        let app = try await TestNode().node.application
        try await app.test(.router) { client in
            let ids = try await client.makeExam("e1", candidates: 1, proctors: 1)
            let token = try await client.tokens("e1", role: "candidate", ids: ids)[0]
            let saved = try await client.call(.put, "/api/answers", json: #"{"answers":{"1":"3","2":"1"}}"#, headers: session(token))
            #expect(saved.status == .ok)
            #expect(try decode(SaveBody.self, saved).saved == 2)
            #expect(try decode(SaveBody.self, saved).late == false)
            for bad in [#"{"answers":{"1":"9"}}"#, #"{"answers":{"21":"1"}}"#, #"{"answers":{}}"#, #"{"answers":{"1":3}}"#, "[]"] {
                let response = try await client.call(.put, "/api/answers", json: bad, headers: session(token))
                #expect(response.status == .badRequest, "\(bad)")
            }
            let read = try decode(AnswersBody.self, try await client.call(.get, "/api/answers", headers: session(token)))
            #expect(read.answers == ["1": "3", "2": "1"])
            #expect(read.status == "in_progress")

            let roster = String(buffer: try await client.call(.get, "/api/exams/e1/roster").body)
            #expect(roster.contains(#""answered":2"#))
            #expect(roster.contains(#""itemCount":20"#))
        }
    }

    @Test("only a candidate's own session saves: 401 without one, 403 for a proctor, 409 before the start")
    func whoMaySave() async throws {
        let app = try await TestNode().node.application
        try await app.test(.router) { client in
            let ids = try await client.makeExam("e1", candidates: 1, proctors: 1, start: false)
            let candidate = try await client.tokens("e1", role: "candidate", ids: ids)[0]
            let proctor = try await client.tokens("e1", role: "proctor", ids: ["e1-p1"])[0]
            let body = #"{"answers":{"1":"1"}}"#
            let anonymous = try await client.call(.put, "/api/answers", json: body, headers: [.contentType: "application/json"])
            #expect(anonymous.status == .unauthorized)
            let admin = try await client.call(.put, "/api/answers", json: body)
            #expect(admin.status == .unauthorized, "the admin token is not a session")
            let asProctor = try await client.call(.put, "/api/answers", json: body, headers: session(proctor))
            #expect(asProctor.status == .forbidden)
            let early = try await client.call(.put, "/api/answers", json: body, headers: session(candidate))
            #expect(early.status == .conflict)
            #expect(try errorCode(early) == "exam_not_started")
            #expect(try decode(AnswersBody.self, try await client.call(.get, "/api/answers", headers: session(candidate))).answers.isEmpty)
        }
    }

    @Test("after the end a save is taken within the grace window and refused after it, both audited")
    func graceWindow() async throws {
        let within = try await TestNode(answerGraceSeconds: 3600).node.application
        try await within.test(.router) { client in
            let ids = try await client.makeExam("e1", candidates: 1)
            let token = try await client.tokens("e1", role: "candidate", ids: ids)[0]
            _ = try await client.end("e1")
            let late = try await client.call(.put, "/api/answers", json: #"{"answers":{"1":"4"}}"#, headers: session(token))
            #expect(late.status == .ok)
            #expect(try decode(SaveBody.self, late).late)
        }
        let closed = try await TestNode(answerGraceSeconds: 0).node.application
        try await closed.test(.router) { client in
            let ids = try await client.makeExam("e1", candidates: 1)
            let token = try await client.tokens("e1", role: "candidate", ids: ids)[0]
            _ = try await client.end("e1")
            // The end time has whole seconds: one second later is past a zero-second window.
            try await Task.sleep(for: .milliseconds(1100))
            let refused = try await client.call(.put, "/api/answers", json: #"{"answers":{"1":"4"}}"#, headers: session(token))
            #expect(refused.status == .conflict)
            #expect(try errorCode(refused) == "exam_ended")
            let read = try decode(AnswersBody.self, try await client.call(.get, "/api/answers", headers: session(token)))
            #expect(read.answers.isEmpty)
            #expect(read.status == "completed")
            let audit = String(buffer: try await client.call(.get, "/api/exams/e1/audit").body)
            #expect(audit.contains(#""action":"answers_refused""#))
        }
    }

    @Test("an exam's items and planned end reach the pages, with the server's clock; bad ones are 400")
    func examFields() async throws {
        let app = try await TestNode().node.application
        try await app.test(.router) { client in
            let created = try await client.call(
                .post, "/api/exams",
                json: #"{"examId":"e1","title":"T","choiceItems":18,"shortItems":2,"scheduledEndDatetime":"2030-01-16T18:00:00Z"}"#
            )
            #expect(created.status == .created)
            let shown = String(buffer: created.body)
            #expect(shown.contains(#""choiceItems":18"#) && shown.contains(#""shortItems":2"#))
            #expect(shown.contains(#""scheduledEndDatetime":"2030-01-16T18:00:00Z""#))
            _ = try await client.call(.post, "/api/exams/e1/candidates", json: #"{"candidates":[{"candidateId":"c1","name":"N"}]}"#)
            let token = try await client.tokens("e1", role: "candidate", ids: ["c1"])[0]
            let before = Int64(Date().timeIntervalSince1970 * 1000)
            let info = try decode(SessionInfo.self, try await client.call(.get, "/api/session", headers: session(token)))
            let after = Int64(Date().timeIntervalSince1970 * 1000)
            #expect(info.choiceItems == 18 && info.shortItems == 2 && info.scheduledEndDatetime == "2030-01-16T18:00:00Z")
            #expect((before - 1...after + 1).contains(info.serverTimeMs))

            for (body, code) in [
                (#"{"examId":"e2","title":"T","choiceItems":0,"shortItems":0}"#, "invalid_items"),
                (#"{"examId":"e2","title":"T","choiceItems":201}"#, "invalid_items"),
                (#"{"examId":"e2","title":"T","shortItems":-1}"#, "invalid_items"),
                (#"{"examId":"e2","title":"T","scheduledEndDatetime":"tomorrow"}"#, "invalid_scheduled_end"),
            ] {
                let response = try await client.call(.post, "/api/exams", json: body)
                #expect(response.status == .badRequest, "\(body)")
                #expect(try errorCode(response) == code)
            }
            #expect(try await client.call(.get, "/api/exams/e2").status == .notFound, "nothing of a refused exam exists")
            let proctors = try await client.call(.get, "/api/exams/e1/proctors")
            #expect(String(buffer: proctors.body) == #"{"proctors":[]}"#)
        }
    }

    @Test("proctors get the live roster over the WebSocket; candidates never do")
    func liveRoster() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let ids = try await client.makeExam("e1", candidates: 2, proctors: 1)
            let candidateToken = try await client.tokens("e1", role: "candidate", ids: ids)[0]
            let candidate = TestBrowser(port: port, token: candidateToken)
            let proctor = TestBrowser(port: port, token: try await client.tokens("e1", role: "proctor", ids: ["e1-p1"])[0])
            _ = try await client.call(.put, "/api/answers", json: #"{"answers":{"1":"2","3":"4"}}"#, headers: session(candidateToken))
            await eventually("a roster showing the connected candidate and its answers") {
                proctor.received.rosters.last.map {
                    $0.contains(#""candidateId":"e1-c1""#) && $0.contains(#""answered":2"#) && $0.contains(#""connected":true"#)
                } ?? false
            }
            let last = try #require(proctor.received.rosters.last)
            #expect(last.contains(#""candidateId":"e1-c2""#) && last.contains(#""connected":false"#))
            _ = try await client.end("e1")
            #expect(await proctor.frames(atLeast: 1).first?.contains(#""type":"exam_end""#) == true)
            #expect(candidate.received.rosters.isEmpty)
            candidate.close()
            proctor.close()
        }
    }
}
