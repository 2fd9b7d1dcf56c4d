import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellProof
import ExamBellRuntime
import Foundation
import Hummingbird

/// The web server's JSON API of DESIGN.md (`/api/exams…`) plus what the admin console and
/// proctors need (roster, audit log). The pages' own calls are `BrowserController`'s.
package struct ExamsController<Context: RequestContext>: Sendable {
    package let store: any ExamPlanStore & PeopleStore & AuditStore
    package let state: any StateStore
    package let roster: RosterBuilder
    package let settings: RequestSettings
    package let auth: OperatorAuth
    package let sessions: SessionTokens
    package let endService: EndExamService
    package let setup: ExamSetupService
    package let spending: Spending

    package init(
        store: any ExamPlanStore & PeopleStore & AuditStore, state: any StateStore, roster: RosterBuilder, settings: RequestSettings,
        auth: OperatorAuth, sessions: SessionTokens, endService: EndExamService, setup: ExamSetupService, spending: Spending
    ) {
        self.store = store
        self.state = state
        self.roster = roster
        self.settings = settings
        self.auth = auth
        self.sessions = sessions
        self.endService = endService
        self.setup = setup
        self.spending = spending
    }

    package var endpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.get("exams", use: list)
        routes.post("exams", use: create)
        routes.get("exams/:examId", use: show)
        routes.post("exams/:examId/candidates", use: registerCandidates)
        routes.post("exams/:examId/proctors", use: registerProctors)
        routes.get("exams/:examId/proctors", use: proctors)
        routes.post("exams/:examId/start", use: start)
        routes.post("exams/:examId/end", use: end)
        routes.post("exams/:examId/sessions", use: createSessions)
        routes.get("exams/:examId/roster", use: roster)
        routes.get("exams/:examId/audit", use: audit)
        return routes
    }

    // MARK: Admin calls

    @Sendable package func list(_ request: Request, context: Context) async throws -> JSONResponse<ExamListView> {
        _ = try await auth.require(request, context: context, .read)
        let page = try ListPage(request, budgets: settings.budgets)
        if let after = page.after { try Identifier.validate(after, field: "after") }
        let plans = try await store.exams(after: page.after, limit: page.limit + 1)
        var views: [ExamView] = []
        for plan in plans.prefix(page.limit) {
            views.append(try await view(of: plan))
        }
        return JSONResponse(value: ExamListView(exams: views, next: plans.count > page.limit ? plans[page.limit - 1].examId : nil))
    }

    @Sendable package func create(_ request: Request, context: Context) async throws -> JSONResponse<ExamView> {
        let caller = try await auth.require(request, context: context, .operate)
        let body = try await request.decodeJSON(CreateExamBody.self, limit: settings.maxBodySize)
        try Identifier.validate(body.examId, field: "examId")
        let title = body.title.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !title.isEmpty, TextLimit.fits(title, characters: 200) else {
            throw ExamBellError.badRequest(code: "invalid_title", "title must be 1 to 200 characters (800 bytes).")
        }
        let items = ExamItems(choice: body.choiceItems ?? ExamItems.standard.choice, short: body.shortItems ?? ExamItems.standard.short)
        try items.validate()
        var scheduledEnd: Timestamp?
        if let text = body.scheduledEndDatetime {
            guard let time = Timestamp(iso8601: text), time > .now() else {
                throw ExamBellError.badRequest(
                    code: "invalid_scheduled_end",
                    "scheduledEndDatetime must be a future UTC time like 2030-01-16T18:00:00Z; the exam ends itself then."
                )
            }
            scheduledEnd = time
        }
        let plan = try await store.createExam(
            examId: body.examId, title: title, items: items, scheduledEnd: scheduledEnd, actor: caller.name, at: .now()
        )
        return JSONResponse(status: .created, value: try await view(of: plan))
    }

    @Sendable package func show(_ request: Request, context: Context) async throws -> JSONResponse<ExamView> {
        _ = try await auth.require(request, context: context, .read)
        return JSONResponse(value: try await view(of: try await plan(context)))
    }

    @Sendable package func registerCandidates(_ request: Request, context: Context) async throws -> JSONResponse<RegistrationView> {
        let caller = try await auth.require(request, context: context, .operate)
        let examId = try examId(context)
        let body = try await request.decodeJSON(CandidatesBody.self, limit: settings.maxBodySize)
        let people = try validatePeople(body.candidates.map { Registrant(id: $0.candidateId, name: $0.name) }, field: "candidateId")
        let result = try await setup.registerCandidates(examId: examId, people, actor: caller.name)
        return JSONResponse(value: RegistrationView(examId: examId, added: result.added, existing: result.existing))
    }

    @Sendable package func registerProctors(_ request: Request, context: Context) async throws -> JSONResponse<RegistrationView> {
        let caller = try await auth.require(request, context: context, .operate)
        let examId = try examId(context)
        let body = try await request.decodeJSON(ProctorsBody.self, limit: settings.maxBodySize)
        let people = try validatePeople(body.proctors.map { Registrant(id: $0.proctorId, name: $0.name) }, field: "proctorId")
        let result = try await store.registerProctors(examId: examId, people, actor: caller.name, at: .now())
        return JSONResponse(value: RegistrationView(examId: examId, added: result.added, existing: result.existing))
    }

    @Sendable package func proctors(_ request: Request, context: Context) async throws -> JSONResponse<ProctorListView> {
        _ = try await auth.require(request, context: context, .read)
        let plan = try await plan(context)
        let proctors = try await store.proctors(examId: plan.examId)
        return JSONResponse(value: ProctorListView(proctors: proctors.map { .init(proctorId: $0.proctorId, name: $0.name) }))
    }

    @Sendable package func start(_ request: Request, context: Context) async throws -> JSONResponse<ExamView> {
        let caller = try await auth.require(request, context: context, .operate)
        let examId = try examId(context)
        let plan = try await setup.start(examId: examId, actor: caller.name)
        return JSONResponse(value: try await view(of: plan))
    }

    @Sendable package func end(_ request: Request, context: Context) async throws -> JSONResponse<EndView> {
        let caller = try await auth.require(request, context: context, .operate)
        let examId = try examId(context)
        let body = try await request.decodeOptionalJSON(ReasonBody.self, limit: settings.maxBodySize)
        let reason = try Reason.validate(body?.reason, required: false)
        let outcome = try await endService.end(examId: examId, actor: caller.name, reason: reason, requestLogger: context.logger)
        return JSONResponse(
            value: EndView(
                examId: examId, status: outcome.plan.status.rawValue,
                endDatetime: outcome.plan.endDatetime?.iso8601 ?? "",
                result: outcome.ended ? "completed" : "already_completed"
            )
        )
    }

    @Sendable package func createSessions(_ request: Request, context: Context) async throws -> JSONResponse<SessionsView> {
        _ = try await auth.require(request, context: context, .operate)
        let examId = try examId(context)
        let body: SessionsBody
        do {
            body = try await request.decodeJSON(SessionsBody.self, limit: settings.maxBodySize)
        } catch let error as ExamBellError where error.message.contains("role") {
            throw ExamBellError.badRequest(code: "invalid_role", "role must be candidate or proctor.")
        }
        guard !body.ids.isEmpty, body.ids.count <= settings.maxBatch else {
            throw ExamBellError.badRequest(code: "invalid_batch", "ids must hold 1 to \(settings.maxBatch) ids.")
        }
        for id in body.ids { try Identifier.validate(id, field: "ids[]") }
        _ = try await plan(context)
        let known: Set<String> =
            switch body.role {
            case .candidate: Set(try await store.candidates(examId: examId).map(\.candidateId))
            case .proctor: Set(try await store.proctors(examId: examId).map(\.proctorId))
            }
        let unknown = body.ids.filter { !known.contains($0) }
        guard unknown.isEmpty else {
            throw ExamBellError.badRequest(
                code: "unknown_ids",
                "\(unknown.count) id(s) are not \(body.role.rawValue)s of exam \(examId), e.g. \(unknown.prefix(5).joined(separator: ", "))."
            )
        }
        let page = body.role == .candidate ? "candidate" : "proctor"
        var result: [SessionsView.Session] = []
        result.reserveCapacity(body.ids.count)
        for id in body.ids {
            let token = try await sessions.issue(subject: id, role: body.role, examId: examId)
            result.append(
                .init(
                    id: id, token: token,
                    socketUrl: "\(settings.publicSocketURL)?token=\(token)",
                    pageUrl: "\(settings.publicWebURL)/\(page)#token=\(token)"
                )
            )
        }
        return JSONResponse(value: SessionsView(sessions: result))
    }

    /// The latest rows (`?limit=`, 100 by default: an exam's log grows with every save), or
    /// with `?format=jsonl` the whole chain in order, one canonical row a line (DESIGN, "Proof").
    @Sendable package func audit(_ request: Request, context: Context) async throws -> Response {
        _ = try await auth.require(request, context: context, .read)
        let plan = try await plan(context)
        let format = try ExportFormat(request, allowed: [.jsonl])
        // What is written by now is in the chain before it is read (bounded: 20 passes).
        for _ in 0..<20 where try await store.chainAudit(examId: plan.examId) > 0 {}
        if format == .jsonl {
            let rows = try await store.auditLog(examId: plan.examId)
            return try TextResponse(
                contentType: "application/jsonl; charset=utf-8",
                text: rows.map { AuditChain.exportLine($0) + "\n" }.joined(), filename: "\(plan.examId)-audit.jsonl"
            ).response(from: request, context: context)
        }
        let page = try ListPage(request, budgets: settings.budgets)
        let entries = try await store.auditLog(examId: plan.examId, latest: page.limit)
        return try JSONResponse(value: AuditView(entries: entries, head: entries.last?.hash)).response(from: request, context: context)
    }

    // MARK: Admin or proctor calls

    /// The candidates of an exam with their live state; for the admin or the exam's proctors.
    @Sendable package func roster(_ request: Request, context: Context) async throws -> JSONResponse<RosterView> {
        let examId = try examId(context)
        if try await auth.identify(request, context: context) == nil {
            let session = try await sessions.verify(request.bearerToken)
            guard session.role == .proctor, session.examId == examId else {
                throw ExamBellError.forbidden("Only operators and this exam's proctors see its roster.")
            }
            // A proctor's page calls are budgeted like a candidate's (a roster is costly).
            try spending.pageCalls.require("proctor:\(session.subject)")
        }
        return JSONResponse(value: try await roster.roster(of: try await plan(context)))
    }

    // MARK: Helpers

    private func examId(_ context: Context) throws -> String {
        let id = try context.parameters.require("examId")
        try Identifier.validate(id, field: "examId")
        return id
    }

    private func plan(_ context: Context) async throws -> ExamPlan {
        try await store.existingExam(try examId(context))
    }

    private func validatePeople(_ people: [Registrant], field: String) throws -> [Registrant] {
        guard !people.isEmpty, people.count <= settings.maxBatch else {
            throw ExamBellError.badRequest(code: "invalid_batch", "Send 1 to \(settings.maxBatch) people in one request.")
        }
        var seen = Set<String>()
        return try people.map { person in
            try Identifier.validate(person.id, field: field)
            guard seen.insert(person.id).inserted else {
                throw ExamBellError.badRequest(code: "duplicate_id", "\(field) \(person.id) appears twice.")
            }
            let name = person.name.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !name.isEmpty, TextLimit.fits(name, characters: 100) else {
                throw ExamBellError.badRequest(code: "invalid_name", "The name of \(person.id) must be 1 to 100 characters (400 bytes).")
            }
            return Registrant(id: person.id, name: name)
        }
    }

    private func view(of plan: ExamPlan) async throws -> ExamView {
        let counts = try await store.candidateCounts(examId: plan.examId)
        let presence = try? await state.presence(examId: plan.examId, freshAfter: RosterBuilder.presenceCutoff())
        let acknowledged = try? await state.acknowledged(examId: plan.examId)
        return ExamView(
            examId: plan.examId, title: plan.title, status: plan.status.rawValue,
            createdAt: plan.createdAt.iso8601, startDatetime: plan.startDatetime?.iso8601,
            scheduledEndDatetime: plan.scheduledEndDatetime?.iso8601, endDatetime: plan.endDatetime?.iso8601, endedBy: plan.endedBy,
            endReason: plan.endReason,
            candidates: .init(
                total: counts.values.reduce(0, +), registered: counts[.registered] ?? 0,
                inProgress: counts[.inProgress] ?? 0, completed: counts[.completed] ?? 0
            ),
            connected: .init(candidates: presence?.candidates.count ?? 0, proctors: presence?.proctors.count ?? 0),
            acknowledged: acknowledged?.count ?? 0, choiceItems: plan.items.choice, shortItems: plan.items.short
        )
    }
}
