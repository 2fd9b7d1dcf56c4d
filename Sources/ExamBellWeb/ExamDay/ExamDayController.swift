import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellRuntime
import Foundation
import Hummingbird

/// The exam day's admin calls (DESIGN "Exam day"): move the planned end, end one candidate,
/// announce; and what proves the end reached everyone: delivery receipts, late submissions.
package struct ExamDayController<Context: RequestContext>: Sendable {
    package let store: any ExamPlanStore & ExamDayStore
    package let roster: RosterBuilder
    package let settings: RequestSettings
    package let auth: OperatorAuth
    package let sessions: SessionTokens
    package let examDay: ExamDayService
    package let spending: Spending

    package var endpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.post("exams/:examId/time", use: changeTime)
        routes.post("exams/:examId/candidates/:candidateId/end", use: endCandidate)
        routes.post("exams/:examId/announcements", use: announce)
        routes.get("exams/:examId/announcements", use: announcements)
        routes.get("exams/:examId/delivery", use: delivery)
        routes.get("exams/:examId/late-submissions", use: lateSubmissions)
        routes.post("exams/:examId/late-submissions/:submissionId", use: decideLateSubmission)
        return routes
    }

    /// Most ids a time change or announcement may list.
    package var maxListed: Int { settings.maxBatch }

    package init(
        store: any ExamPlanStore & ExamDayStore, roster: RosterBuilder, settings: RequestSettings, auth: OperatorAuth, sessions: SessionTokens,
        examDay: ExamDayService, spending: Spending
    ) {
        self.store = store
        self.roster = roster
        self.settings = settings
        self.auth = auth
        self.sessions = sessions
        self.examDay = examDay
        self.spending = spending
    }

    @Sendable package func changeTime(_ request: Request, context: Context) async throws -> JSONResponse<TimeChangeView> {
        let caller = try await auth.require(request, context: context, .operate)
        try spending.changes.require(caller.name)
        let examId = try Self.id(context, "examId")
        let body = try await request.decodeJSON(TimeChangeBody.self, limit: settings.maxBodySize)
        let reason = try Reason.validate(body.reason, required: true) ?? ""
        let amount: TimeChange.Amount
        switch (body.scheduledEndDatetime, body.addMinutes) {
        case (let text?, nil):
            guard let time = Timestamp(iso8601: text) else {
                throw ExamBellError.badRequest(code: "invalid_time", "scheduledEndDatetime must be a UTC time like 2030-01-16T18:10:00Z.")
            }
            amount = .to(time)
        case (nil, let minutes?):
            guard minutes != 0, abs(minutes) <= 24 * 60 else {
                throw ExamBellError.badRequest(
                    code: "invalid_minutes", "addMinutes must be a non-zero number of minutes within a day (negative shortens).")
            }
            amount = .minutes(minutes)
        default:
            throw ExamBellError.badRequest(code: "invalid_time", "Give either scheduledEndDatetime or addMinutes.")
        }
        let ids = try body.candidateIds.map { try validateIds($0) }
        let result = try await examDay.changeTime(
            examId: examId, TimeChange(amount: amount, candidateIds: ids), actor: caller.name, reason: reason, preview: body.preview ?? false
        )
        func entries(_ times: [String: Timestamp]) -> [TimeChangeView.Entry] {
            times.sorted { $0.key < $1.key }.map { .init(candidateId: $0.key, scheduledEndDatetime: $0.value.iso8601) }
        }
        return JSONResponse(
            value: TimeChangeView(
                examId: examId, scheduledEndDatetime: result.scheduledEndDatetime.iso8601, candidates: entries(result.listed),
                affected: body.preview == true ? entries(result.affected) : nil, preview: body.preview == true ? true : nil
            )
        )
    }

    @Sendable package func endCandidate(_ request: Request, context: Context) async throws -> JSONResponse<CandidateEndView> {
        let caller = try await auth.require(request, context: context, .operate)
        try spending.changes.require(caller.name)
        let examId = try Self.id(context, "examId")
        let candidateId = try Self.id(context, "candidateId")
        let body = try await request.decodeOptionalJSON(ReasonBody.self, limit: settings.maxBodySize)
        let reason = try Reason.validate(body?.reason, required: false)
        let outcome = try await examDay.endCandidate(examId: examId, candidateId: candidateId, actor: caller.name, reason: reason)
        return JSONResponse(value: CandidateEndView(outcome, examId: examId))
    }

    @Sendable package func announce(_ request: Request, context: Context) async throws -> JSONResponse<AnnouncementIdView> {
        let examId = try Self.id(context, "examId")
        let actor = try await operatorOrProctor(request, context: context, examId: examId, .operate)
        try spending.announcements.require(actor)
        let body = try await request.decodeJSON(AnnouncementBody.self, limit: settings.maxBodySize)
        let message = body.message.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !message.isEmpty, TextLimit.fits(message, characters: 500) else {
            throw ExamBellError.badRequest(code: "invalid_message", "message must be 1 to 500 characters (2,000 bytes).")
        }
        let ids = try body.candidateIds.map { try validateIds($0) }
        let event = try await examDay.announce(examId: examId, message: message, candidateIds: ids, actor: actor)
        return JSONResponse(value: AnnouncementIdView(announcementId: event.announcementId))
    }

    @Sendable package func announcements(_ request: Request, context: Context) async throws -> JSONResponse<AnnouncementsView> {
        let examId = try Self.id(context, "examId")
        _ = try await operatorOrProctor(request, context: context, examId: examId, .read)
        _ = try await store.existingExam(examId)
        let all = try await roster.announcements(examId: examId)
        return JSONResponse(value: AnnouncementsView(announcements: Array(all.suffix(settings.budgets.latestAnnouncements)), total: all.count))
    }

    @Sendable package func delivery(_ request: Request, context: Context) async throws -> JSONResponse<DeliveryView> {
        let examId = try Self.id(context, "examId")
        _ = try await operatorOrProctor(request, context: context, examId: examId, .read)
        let plan = try await store.existingExam(examId)
        return JSONResponse(value: try await roster.delivery(of: plan))
    }

    /// `@_optimize(none)`: the release compiler (Swift 6.3.1) crashed with signal 11 while
    /// splitting this coroutine; nothing here is hot.
    @_optimize(none)
    @Sendable package func lateSubmissions(_ request: Request, context: Context) async throws -> JSONResponse<LateSubmissionsView> {
        _ = try await auth.require(request, context: context, .read)
        let plan = try await store.existingExam(try Self.id(context, "examId"))
        let page = try ListPage(request, budgets: settings.budgets)
        let submissions = try await store.lateSubmissions(examId: plan.examId, after: try page.afterNumber(), limit: page.limit + 1)
        return JSONResponse(
            value: LateSubmissionsView(
                lateSubmissions: Array(submissions.prefix(page.limit)),
                next: submissions.count > page.limit ? String(submissions[page.limit - 1].id) : nil)
        )
    }

    /// The operator's decision on a late submission: `{"decision":"accept"|"reject","reason"}`.
    @Sendable package func decideLateSubmission(_ request: Request, context: Context) async throws -> JSONResponse<LateSubmission> {
        let caller = try await auth.require(request, context: context, .operate)
        let examId = try Self.id(context, "examId")
        guard let id = Int64(try context.parameters.require("submissionId")), id > 0 else {
            throw ExamBellError.badRequest(code: "invalid_id", "submissionId must be a late submission's number.")
        }
        let body = try await request.decodeJSON(LateSubmissionDecisionBody.self, limit: settings.maxBodySize)
        let reason = try Reason.validate(body.reason, required: true)
        guard body.decision == "accept" || body.decision == "reject" else {
            throw ExamBellError.badRequest(code: "invalid_decision", "decision must be accept or reject.")
        }
        let decided = try await store.decideLateSubmission(
            examId: examId, id: id, accept: body.decision == "accept", actor: caller.name, reason: reason, at: .now()
        )
        return JSONResponse(value: decided)
    }

    // MARK: Helpers

    /// The operator's name when its role permits `permission`, `proctor:{id}` for a proctor
    /// of this exam; 401/403 otherwise.
    private func operatorOrProctor(_ request: Request, context: Context, examId: String, _ permission: Permission) async throws -> String {
        if let caller = try await auth.identify(request, context: context) { return try auth.permit(caller, permission).name }
        let session = try await sessions.verify(request.bearerToken)
        guard session.role == .proctor, session.examId == examId else {
            throw ExamBellError.forbidden("Only operators and this exam's proctors may do this.")
        }
        let proctor = "proctor:\(session.subject)"
        try spending.pageCalls.require(proctor)
        return proctor
    }

    private static func id(_ context: Context, _ name: String) throws -> String {
        let id = try context.parameters.require(name)
        try Identifier.validate(id, field: name)
        return id
    }

    private func validateIds(_ ids: [String]) throws -> [String] {
        guard !ids.isEmpty, ids.count <= maxListed else {
            throw ExamBellError.badRequest(code: "invalid_batch", "candidateIds must hold 1 to \(maxListed) ids (leave it out for everyone).")
        }
        for id in ids { try Identifier.validate(id, field: "candidateIds[]") }
        guard Set(ids).count == ids.count else {
            throw ExamBellError.badRequest(code: "duplicate_id", "candidateIds lists an id twice.")
        }
        return ids
    }
}

extension CandidateEndView {
    package init(_ outcome: ExamDayService.CandidateOutcome, examId: String) {
        self.init(
            examId: examId, candidateId: outcome.candidateId, status: "completed", endDatetime: outcome.endDatetime.iso8601,
            result: outcome.ended ? "completed" : "already_completed"
        )
    }
}
