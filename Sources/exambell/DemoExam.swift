import ExamBellClient
import ExamBellCore
import ExamBellRuntime
import Foundation

/// `serve --demo`: a started exam with a few candidates and a proctor, made through the API
/// like any operator would, and the page URLs to open.
enum DemoExam {
    static let candidates = [("c001", "김민준"), ("c002", "이서연"), ("c003", "박도윤"), ("c004", "최지우"), ("c005", "정하은")]

    static func create(client: APIClient) async throws -> [String] {
        struct Sessions: Decodable {
            struct Session: Decodable {
                var id: String
                var pageUrl: String
            }
            var sessions: [Session]
        }
        struct Ignored: Decodable {}
        let stamp = Timestamp.now().iso8601.filter(\.isNumber)
        let examId = "demo-\(stamp)"
        let suffix = String(stamp.suffix(6))
        // 18 multiple-choice and 2 short-answer items, planned to end in an hour.
        let body: [String: any Sendable] = [
            "examId": examId, "title": "데모 시험 (Demo exam)", "choiceItems": 18, "shortItems": 2,
            "scheduledEndDatetime": Timestamp.now().adding(seconds: 3600).iso8601,
        ]
        _ = try await client.call("POST", "api/exams", body: body, as: Ignored.self)
        let people: [[String: String]] = candidates.map { ["candidateId": "\($0.0)-\(suffix)", "name": $0.1] }
        _ = try await client.call("POST", "api/exams/\(examId)/candidates", body: ["candidates": people], as: Ignored.self)
        _ = try await client.call(
            "POST", "api/exams/\(examId)/proctors", body: ["proctors": [["proctorId": "p001-\(suffix)", "name": "감독관"]]],
            as: Ignored.self
        )
        _ = try await client.call("POST", "api/exams/\(examId)/start", as: Ignored.self)
        let candidateSessions = try await client.call(
            "POST", "api/exams/\(examId)/sessions", body: ["role": "candidate", "ids": people.map { $0["candidateId"]! }],
            as: Sessions.self
        )
        let proctorSessions = try await client.call(
            "POST", "api/exams/\(examId)/sessions", body: ["role": "proctor", "ids": ["p001-\(suffix)"]], as: Sessions.self
        )
        var lines = ["", "Demo exam \(examId) is in progress.", "  Candidate pages:"]
        lines += candidateSessions.sessions.map { "    \($0.id): \($0.pageUrl)" }
        lines += ["  Proctor page:"] + proctorSessions.sessions.map { "    \($0.id): \($0.pageUrl)" }
        lines += ["  End it from the admin console, or: exambell end \(examId) --admin-token <token> --reason \"demo\""]
        return lines
    }
}
