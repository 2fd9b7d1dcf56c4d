import ExamBellCore
import Foundation
import Hummingbird

/// The calls candidate and proctor pages make with their session token:
/// `GET /api/session` (who, which exam, the server's clock), `GET /api/answers` and
/// `PUT /api/answers` (a candidate's answer sheet, saved as the candidate works).
struct BrowserController<Context: RequestContext>: Sendable {
    let backends: ExamBellBackends
    let configuration: ExamBellConfiguration
    let sessions: SessionTokens

    var endpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.get("session", use: session)
        routes.get("answers", use: answers)
        routes.put("answers", use: saveAnswers)
        return routes
    }

    /// Who the session token's browser is, and its exam's state: what a page shows first.
    @Sendable func session(_ request: Request, context: Context) async throws -> JSONResponse<SessionInfoView> {
        let session = try await sessions.verify(request.bearerToken)
        let plan = try await backends.store.existingExam(session.examId)
        let name: String? =
            switch session.role {
            case .candidate: try await backends.store.candidates(ids: [session.subject]).first?.name
            case .proctor: try await backends.store.proctors(examId: plan.examId).first { $0.proctorId == session.subject }?.name
            }
        return JSONResponse(
            value: SessionInfoView(
                id: session.subject, name: name ?? session.subject, role: session.role.rawValue, examId: plan.examId,
                title: plan.title, status: plan.status.rawValue, startDatetime: plan.startDatetime?.iso8601,
                scheduledEndDatetime: plan.scheduledEndDatetime?.iso8601, endDatetime: plan.endDatetime?.iso8601,
                socketUrl: configuration.publicSocketURL, choiceItems: plan.items.choice, shortItems: plan.items.short,
                serverTimeMs: Int64((Date().timeIntervalSince1970 * 1000).rounded())
            )
        )
    }

    /// The candidate's saved answers; what a reopened page shows (read-only after the end).
    @Sendable func answers(_ request: Request, context: Context) async throws -> JSONResponse<AnswersView> {
        let session = try await candidateSession(request)
        let plan = try await backends.store.existingExam(session.examId)
        let saved = try await backends.store.answers(candidateId: session.subject)
        return JSONResponse(
            value: AnswersView(
                examId: plan.examId, status: plan.status.rawValue, endDatetime: plan.endDatetime?.iso8601,
                answers: Dictionary(uniqueKeysWithValues: saved.map { (String($0.key), $0.value) })
            )
        )
    }

    /// Saves answers while the exam runs, and within the grace window after its end for
    /// answers already in flight; after that 409 `exam_ended`. Both outcomes are audited.
    @Sendable func saveAnswers(_ request: Request, context: Context) async throws -> JSONResponse<AnswerSaveView> {
        let session = try await candidateSession(request)
        let plan = try await backends.store.existingExam(session.examId)
        let body = try await request.decodeJSON(SaveAnswersBody.self, limit: configuration.maxBodySize)
        let answers = try plan.items.validate(body.answers)
        let outcome = try await backends.store.saveAnswers(
            candidateId: session.subject, examId: plan.examId, answers, at: .now(),
            window: AnswerWindow(graceSeconds: configuration.answerGraceSeconds)
        )
        switch outcome {
        case .saved(let at):
            return JSONResponse(value: AnswerSaveView(saved: answers.count, savedAt: at.iso8601, late: false))
        case .savedLate(let at, _):
            return JSONResponse(value: AnswerSaveView(saved: answers.count, savedAt: at.iso8601, late: true))
        case .refused(let end):
            throw ExamBellError.conflict(
                code: "exam_ended",
                "Exam \(plan.examId) ended at \(end.iso8601); answers are no longer taken (grace window \(configuration.answerGraceSeconds) s)."
            )
        }
    }

    private func candidateSession(_ request: Request) async throws -> Session {
        let session = try await sessions.verify(request.bearerToken)
        guard session.role == .candidate else { throw ExamBellError.forbidden("Only a candidate's session has an answer sheet.") }
        return session
    }
}
