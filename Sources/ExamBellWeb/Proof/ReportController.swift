import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellProof
import ExamBellRuntime
import Hummingbird

/// `GET /api/exams/{examId}/report` (DESIGN, "Proof"): one row a candidate with how it ended,
/// the end's receipts, its saves, its disconnects and time offline as the socket nodes recorded
/// them (across nodes), the time changes that applied to it and its receipt's answer hash;
/// `?format=csv` gives the same as a CSV download. Operators only.
package struct ReportController<Context: RequestContext>: Sendable {
    package let auth: OperatorAuth
    package let roster: RosterBuilder
    package let store: any ReportStore & ExamPlanStore & AnswerStore
    package let state: any StateStore
    package let receipts: ReceiptService

    package init(
        auth: OperatorAuth, roster: RosterBuilder, store: any ReportStore & ExamPlanStore & AnswerStore, state: any StateStore,
        receipts: ReceiptService
    ) {
        self.auth = auth
        self.roster = roster
        self.store = store
        self.state = state
        self.receipts = receipts
    }

    package var endpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.get("exams/:examId/report", use: report)
        return routes
    }

    @Sendable package func report(_ request: Request, context: Context) async throws -> Response {
        _ = try await auth.require(request, context: context, .read)
        let examId = try context.parameters.require("examId")
        try Identifier.validate(examId, field: "examId")
        let format = try ExportFormat(request, allowed: [.csv])
        let report = try await build(try await store.existingExam(examId))
        if format == .csv {
            return try TextResponse(contentType: "text/csv; charset=utf-8", text: report.csv, filename: "\(examId)-report.csv")
                .response(from: request, context: context)
        }
        return try JSONResponse(value: report).response(from: request, context: context)
    }

    package func build(_ plan: ExamPlan) async throws -> ExamReport {
        let now = Timestamp.now()
        async let rowsRead = roster.receipts(examId: plan.examId)
        async let answeredRead = store.answeredCounts(examId: plan.examId)
        async let factsRead = store.reportFacts(examId: plan.examId)
        async let spansRead = state.connections(examId: plan.examId)
        async let seenRead = state.instancesLastSeen(
            examId: plan.examId, freshAfter: RosterBuilder.presenceCutoff(), now: Timestamp.milliseconds())
        // Due receipts are issued by this read too (a bounded batch: see `receipts`).
        async let signedRead = receipts.receipts(examId: plan.examId, latest: nil)
        let (rows, answered, facts) = try await (rowsRead, answeredRead, factsRead)
        let (spans, seen, signed) = try await (spansRead, seenRead, signedRead)
        let spansOf = Dictionary(grouping: spans, by: \.candidateId)
        let receiptOf = Dictionary(signed.receipts.map { ($0.receipt.candidateId, $0.receipt) }, uniquingKeysWith: { first, _ in first })
        let inputs = ExamReport.Inputs(plan: plan, facts: facts, now: now, lastSeen: seen)
        let candidates = rows.map { candidate, receipt in
            ExamReport.row(
                candidate, told: receipt.told, locked: receipt.locked, saved: receipt.saved,
                answered: answered[candidate.candidateId] ?? 0, spans: spansOf[candidate.candidateId] ?? [],
                receipt: receiptOf[candidate.candidateId], inputs)
        }
        return ExamReport(
            examId: plan.examId, status: plan.status.rawValue, generatedAt: now.iso8601,
            receiptsPending: candidates.count { $0.endDatetime != nil && $0.answersSha256 == nil }, candidates: candidates)
    }
}
