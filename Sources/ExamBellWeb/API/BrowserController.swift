import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellRuntime
import Foundation
import Hummingbird

/// The calls candidate and proctor pages make with their session token:
/// `GET /api/session` (who, which exam, its planned end, the server's clock),
/// `GET /api/answers` and `PUT /api/answers` (a candidate's answer sheet, saved as the
/// candidate works, and once more with `"final":true` after the page locked),
/// `POST /api/hand-in` (the candidate ends alone), `GET /api/announcements` (the notices
/// meant for it, for a page that was away when they were sent) and `POST /api/socket-ticket`
/// (a 30-second ticket for the WebSocket's URL, so the session token stays out of URLs).
package struct BrowserController<Context: RequestContext>: Sendable {
    package let store: any ExamPlanStore & PeopleStore & AnswerStore & ExamDayStore
    package let state: any StateStore
    package let settings: RequestSettings
    package let sessions: SessionTokens
    package let examDay: ExamDayService
    package let metrics: NodeMetrics
    package let spending: Spending

    package init(
        store: any ExamPlanStore & PeopleStore & AnswerStore & ExamDayStore, state: any StateStore, settings: RequestSettings,
        sessions: SessionTokens, examDay: ExamDayService, metrics: NodeMetrics, spending: Spending
    ) {
        self.store = store
        self.state = state
        self.settings = settings
        self.sessions = sessions
        self.examDay = examDay
        self.metrics = metrics
        self.spending = spending
    }

    package var endpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.get("session", use: session)
        routes.get("answers", use: answers)
        routes.put("answers", use: saveAnswers)
        routes.post("hand-in", use: handIn)
        routes.get("announcements", use: announcements)
        routes.post("socket-ticket", use: socketTicket)
        return routes
    }

    /// A socket ticket for the caller's session (`SessionTokens.ticket`).
    @Sendable package func socketTicket(_ request: Request, context: Context) async throws -> JSONResponse<SocketTicketView> {
        let session = try await pageSession(request)
        return JSONResponse(
            value: SocketTicketView(
                ticket: try await sessions.ticket(for: session), expiresInSeconds: Int(SessionTokens.ticketLifetime.components.seconds)
            ))
    }

    /// Who the session token's browser is, and its exam's state: what a page shows first.
    @Sendable package func session(_ request: Request, context: Context) async throws -> JSONResponse<SessionInfoView> {
        let session = try await pageSession(request)
        let plan = try await store.existingExam(session.examId)
        let candidate: Candidate? =
            session.role == .candidate ? try await store.candidates(ids: [session.subject]).first : nil
        let name: String? =
            switch session.role {
            case .candidate: candidate?.name
            case .proctor: try await store.proctors(examId: plan.examId).first { $0.proctorId == session.subject }?.name
            }
        // A candidate sees its own planned end, and its own end once it ended alone.
        let ownEnd = candidate?.endTime(in: plan)
        if let candidate, ownEnd == nil, let planned = candidate.plannedEnd(in: plan) {
            // The page now has this planned end (as if told by `exam_time`): the roster shows it.
            try? await state.recordTimeAck(examId: plan.examId, candidateId: candidate.candidateId, end: planned)
        }
        return JSONResponse(
            value: SessionInfoView(
                id: session.subject, name: name ?? session.subject, role: session.role.rawValue, examId: plan.examId,
                title: plan.title, status: ownEnd != nil ? ExamStatus.completed.rawValue : plan.status.rawValue,
                startDatetime: plan.startDatetime?.iso8601,
                scheduledEndDatetime: (candidate?.plannedEnd(in: plan) ?? plan.scheduledEndDatetime)?.iso8601,
                endDatetime: (ownEnd ?? plan.endDatetime)?.iso8601,
                socketUrl: settings.publicSocketURL, choiceItems: plan.items.choice, shortItems: plan.items.short,
                candidateStatus: candidate?.status.rawValue,
                serverTimeMs: Int64((Date().timeIntervalSince1970 * 1000).rounded())
            )
        )
    }

    /// The candidate's saved answers; what a reopened page shows (read-only after the end).
    @Sendable package func answers(_ request: Request, context: Context) async throws -> JSONResponse<AnswersView> {
        let session = try await candidateSession(request)
        let plan = try await store.existingExam(session.examId)
        let saved = try await store.answers(candidateId: session.subject)
        return JSONResponse(
            value: AnswersView(
                examId: plan.examId, status: plan.status.rawValue, endDatetime: plan.endDatetime?.iso8601,
                answers: Dictionary(uniqueKeysWithValues: saved.map { (String($0.key), $0.value) })
            )
        )
    }

    /// Saves answers while the exam runs, and within the grace window after its end for
    /// answers already in flight; after that 409 `exam_ended`. Both outcomes are audited.
    @Sendable package func saveAnswers(_ request: Request, context: Context) async throws -> JSONResponse<AnswerSaveView> {
        let session = try await candidateSession(request, budget: spending.answerSaves)
        let plan = try await store.existingExam(session.examId)
        let body = try await request.decodeJSON(SaveAnswersBody.self, limit: settings.maxBodySize)
        let final = body.final ?? false
        // A page's final save may hold no answer at all: it still proves the page got there.
        let answers = final && body.answers.isEmpty ? [:] : try plan.items.validate(body.answers)
        let now = Timestamp.now()
        let outcome = try await store.saveAnswers(
            candidateId: session.subject, examId: plan.examId, answers, at: now,
            window: AnswerWindow(
                graceSeconds: settings.answerGraceSeconds, lateBytesPerCandidate: settings.budgets.lateBytesPerCandidate),
            final: final
        )
        if final {
            switch outcome {
            case .savedLate(_, let end), .refused(let end): metrics.saved(after: end)
            case .saved: break
            }
        }
        switch outcome {
        case .saved(let at):
            return JSONResponse(value: AnswerSaveView(saved: answers.count, savedAt: at.iso8601, late: false))
        case .savedLate(let at, _):
            return JSONResponse(value: AnswerSaveView(saved: answers.count, savedAt: at.iso8601, late: true))
        case .refused(let end):
            throw ExamBellError.conflict(
                code: "exam_ended",
                "Exam \(plan.examId) ended at \(end.iso8601) for you; answers are no longer taken (grace window \(settings.answerGraceSeconds) s). These were kept as a late submission for the operator to decide on."
            )
        }
    }

    /// The candidate hands in: its answers were saved just before (the page saves first);
    /// it ends alone now, its page locks, the roster shows it.
    @Sendable package func handIn(_ request: Request, context: Context) async throws -> JSONResponse<CandidateEndView> {
        let session = try await candidateSession(request)
        let outcome = try await examDay.endCandidate(
            examId: session.examId, candidateId: session.subject, actor: session.subject, reason: "handed in", endedBy: .handIn
        )
        return JSONResponse(value: CandidateEndView(outcome, examId: session.examId))
    }

    /// The announcements meant for this candidate (all of the exam's for a proctor), oldest first.
    @Sendable package func announcements(_ request: Request, context: Context) async throws -> JSONResponse<AnnouncementsView> {
        let session = try await pageSession(request)
        let all = try await store.announcements(
            examId: session.examId, for: session.role == .candidate ? session.subject : nil
        )
        // The latest few, with how many there are: a page shows those, never a stack.
        let list = all.suffix(settings.budgets.latestAnnouncements)
        return JSONResponse(
            value: AnnouncementsView(
                announcements: list.map {
                    AnnouncementView(
                        announcementId: $0.announcementId, message: $0.message, timestamp: $0.timestamp.iso8601,
                        candidateIds: session.role == .candidate ? nil : $0.candidateIds, seen: nil
                    )
                }, total: all.count
            )
        )
    }

    /// The caller's session, once it has spent one of `budget` (its page calls by default).
    private func pageSession(_ request: Request, budget: RateBudget? = nil) async throws -> Session {
        let session = try await sessions.verify(request.bearerToken)
        try (budget ?? spending.pageCalls).require("\(session.role.rawValue):\(session.subject)")
        return session
    }

    private func candidateSession(_ request: Request, budget: RateBudget? = nil) async throws -> Session {
        let session = try await pageSession(request, budget: budget)
        guard session.role == .candidate else { throw ExamBellError.forbidden("Only a candidate's session has an answer sheet.") }
        return session
    }
}

package struct SocketTicketView: Codable, Sendable {
    package var ticket: String
    package var expiresInSeconds: Int
}
