import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellProof
import ExamBellRuntime
import Foundation
import Hummingbird

/// Receipts over HTTP (DESIGN, "Proof"): `GET /api/receipt` (the candidate's own, with its
/// session token), `GET /api/receipt-keys` (public), `GET /api/exams/{examId}/receipts`
/// (operators and the exam's proctors), `POST /api/receipt-keys/rotate` (admin).
package struct ReceiptsController<Context: RequestContext>: Sendable {
    package let receipts: ReceiptService
    package let auth: OperatorAuth
    package let sessions: SessionTokens
    package let spending: Spending
    package let budgets: Budgets
    package let store: any ExamPlanStore

    package init(
        receipts: ReceiptService, auth: OperatorAuth, sessions: SessionTokens, spending: Spending, budgets: Budgets, store: any ExamPlanStore
    ) {
        self.receipts = receipts
        self.auth = auth
        self.sessions = sessions
        self.spending = spending
        self.budgets = budgets
        self.store = store
    }

    package var endpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.get("receipt", use: own)
        routes.get("receipt-keys", use: keys)
        routes.post("receipt-keys/rotate", use: rotate)
        routes.get("exams/:examId/receipts", use: list)
        return routes
    }

    @Sendable package func own(_ request: Request, context: Context) async throws -> JSONResponse<ReceiptListItem> {
        let session = try await sessions.verify(request.bearerToken)
        try spending.pageCalls.require("\(session.role.rawValue):\(session.subject)")
        guard session.role == .candidate else { throw ExamBellError.forbidden("Only a candidate's session has a receipt.") }
        guard let receipt = try await receipts.receipt(candidateId: session.subject, examId: session.examId) else {
            throw ExamBellError.conflict(
                code: "receipt_not_ready",
                "Your receipt is issued once your exam has ended and its grace window of \(receipts.graceSeconds) s for answers in flight has passed."
            )
        }
        return JSONResponse(value: ReceiptListItem(receipt))
    }

    @Sendable package func keys(_ request: Request, context: Context) async throws -> JSONResponse<ReceiptKeysView> {
        JSONResponse(value: ReceiptKeysView(keys: try await receipts.publishedKeys()))
    }

    @Sendable package func rotate(_ request: Request, context: Context) async throws -> JSONResponse<ReceiptKey> {
        let principal = try await auth.require(request, context: context, .manage)
        try spending.keyRotations.require(principal.name)
        return JSONResponse(status: .created, value: try await receipts.rotate())
    }

    @Sendable package func list(_ request: Request, context: Context) async throws -> JSONResponse<ReceiptsView> {
        let examId = try context.parameters.require("examId")
        try Identifier.validate(examId, field: "examId")
        if try await auth.identify(request, context: context) == nil {
            let session = try await sessions.verify(request.bearerToken)
            guard session.role == .proctor, session.examId == examId else {
                throw ExamBellError.forbidden("Only operators and this exam's proctors see its receipts.")
            }
            try spending.pageCalls.require("proctor:\(session.subject)")
        } else {
            _ = try await auth.require(request, context: context, .read)
        }
        _ = try await store.existingExam(examId)
        let page = try ListPage(request, budgets: budgets)
        let list = try await receipts.receipts(examId: examId, latest: page.limit)
        return JSONResponse(value: ReceiptsView(receipts: list.receipts.map { ReceiptListItem($0) }, total: list.total))
    }
}

package struct ReceiptKeysView: Codable, Sendable {
    package var keys: [ReceiptKey]
}

/// A receipt as listed: the DESIGN shape plus its fingerprint for people to compare.
package struct ReceiptListItem: Codable, Sendable {
    package var receipt: Receipt
    package var keyId: String
    package var signature: String
    package var fieldDigests: [String: String]
    package var fingerprint: String

    package init(_ signed: SignedReceipt) {
        receipt = signed.receipt
        keyId = signed.keyId
        signature = signed.signature
        fieldDigests = signed.fieldDigests
        fingerprint = signed.fingerprint
    }
}

package struct ReceiptsView: Codable, Sendable {
    /// The latest (`?limit=`, 100 by default), oldest first.
    package var receipts: [ReceiptListItem]
    package var total: Int
}
