import ExamBellCore
import Foundation
import SQLKit

/// `ReceiptStore`: receipts, issued once per candidate, and their signing keys.
extension SQLExamStore {
    public func receipt(
        candidateId: String, examId: String, now: Timestamp, graceSeconds: Int,
        sign: @escaping @Sendable (ReceiptFacts) throws -> String
    ) async throws -> String? {
        if let body = try await connection({ db in try await Self.storedReceipt(candidateId, db) }) { return body }
        return try await transaction { db in
            let plan = try await Self.existingPlan(examId, db)
            let lock: SQLQueryString = db.dialect.name == "postgresql" ? " FOR UPDATE" : ""
            let row = try await db.raw("SELECT * FROM exam_candidate WHERE candidate_id = \(bind: candidateId)" + lock).first()
            guard let row, case let candidate = try Self.candidate(from: row), candidate.examId == examId else {
                throw StoreError.notFound(code: "candidate_not_found", message: "\(candidateId) is not a candidate of exam \(examId).")
            }
            return try await Self.issueReceipt(
                plan: plan, candidate: candidate, endedBy: try row.decode(column: "ended_by", as: String?.self), now: now,
                graceSeconds: graceSeconds, sign: sign, db)
        }
    }

    public func receipts(
        examId: String, now: Timestamp, graceSeconds: Int, latest: Int?, sign: @escaping @Sendable (ReceiptFacts) throws -> String
    ) async throws -> (bodies: [String], total: Int) {
        let plan = try await existingExam(examId)
        if plan.status == .completed || plan.status == .inProgress {
            // Candidates ended without a receipt yet: each is issued in its own short transaction,
            // a bounded number per listing (the console asks every few seconds; 10,000 due
            // receipts are issued over a few of its refreshes, never in one request).
            let missing = try await connection { db in
                try await db.raw(
                    """
                    SELECT candidate_id FROM exam_candidate c WHERE plan_id = \(bind: examId)
                        AND (status = \(bind: CandidateStatus.completed.rawValue) OR \(bind: plan.status == .completed ? 1 : 0) = 1)
                        AND NOT EXISTS (SELECT 1 FROM exam_receipt r WHERE r.candidate_id = c.candidate_id)
                    ORDER BY candidate_id LIMIT \(bind: Self.receiptsIssuedPerListing)
                    """
                ).all().map { try $0.decode(column: "candidate_id", as: String.self) }
            }
            for id in missing {
                _ = try await receipt(candidateId: id, examId: examId, now: now, graceSeconds: graceSeconds, sign: sign)
            }
        }
        return try await connection { db in
            let total =
                try await db.raw("SELECT COUNT(*) AS n FROM exam_receipt WHERE plan_id = \(bind: examId)").first()?
                .decode(column: "n", as: Int.self) ?? 0
            let query: SQLQueryString =
                """
                SELECT body FROM (SELECT body, issued_at, candidate_id FROM exam_receipt WHERE plan_id = \(bind: examId)
                    ORDER BY issued_at DESC, candidate_id DESC LIMIT \(bind: latest ?? Int(Int32.max))) recent
                ORDER BY issued_at, candidate_id
                """
            return (try await db.raw(query).all().map { try $0.decode(column: "body", as: String.self) }, total)
        }
    }

    public func receiptKeys() async throws -> [StoredReceiptKey] {
        try await connection { db in
            try await db.raw("SELECT * FROM exam_receipt_key ORDER BY created_at DESC, key_id").all().map { row in
                StoredReceiptKey(
                    keyId: try row.decode(column: "key_id", as: String.self),
                    publicKey: try row.decode(column: "public_key", as: String.self),
                    sealedPrivateKey: try row.decode(column: "sealed_private_key", as: String.self),
                    createdAt: try Self.timestamp(row, "created_at") ?? Timestamp(secondsSince1970: 0),
                    retiredAt: try Self.timestamp(row, "retired_at")
                )
            }
        }
    }

    public func addReceiptKey(_ key: StoredReceiptKey, retiringOthers: Bool, limit: Int?) async throws {
        try await transaction { db in
            // Rotations take turns (SQLite's one writer does this by itself): a count taken beside
            // another rotation's uncommitted insert would let both take the last place.
            if db.dialect.name == "postgresql" {
                try await db.raw("SELECT pg_advisory_xact_lock(\(bind: Self.receiptKeyLock))").run()
            }
            if retiringOthers {
                try await db.raw(
                    "UPDATE exam_receipt_key SET retired_at = \(bind: key.createdAt.iso8601) WHERE retired_at IS NULL"
                ).run()
            }
            if let limit {
                let kept =
                    try await db.raw("SELECT COUNT(*) AS n FROM exam_receipt_key").first()?.decode(column: "n", as: Int.self) ?? 0
                guard kept < limit else {
                    throw StoreError.conflict(
                        code: "receipt_key_limit",
                        message: "\(kept) receipt keys are kept (the most there may be: every key stays published); nothing was changed.")
                }
            }
            try await db.raw(
                """
                INSERT INTO exam_receipt_key (key_id, public_key, sealed_private_key, created_at, retired_at)
                VALUES (\(bind: key.keyId), \(bind: key.publicKey), \(bind: key.sealedPrivateKey), \(bind: key.createdAt.iso8601),
                    \(bind: key.retiredAt?.iso8601))
                """
            ).run()
        }
    }

    /// The advisory lock rotations hold for their transaction (any fixed number of ExamBell's own).
    static let receiptKeyLock: Int64 = 0x4578_616D_4B65_79

    /// Receipts one listing issues at most.
    static let receiptsIssuedPerListing = 200

    static func storedReceipt(_ candidateId: String, _ db: any SQLDatabase) async throws -> String? {
        try await db.raw("SELECT body FROM exam_receipt WHERE candidate_id = \(bind: candidateId)").first()?
            .decode(column: "body", as: String.self)
    }

    static func hasReceipt(_ candidateId: String, _ db: any SQLDatabase) async throws -> Bool {
        try await db.raw("SELECT 1 AS one FROM exam_receipt WHERE candidate_id = \(bind: candidateId)").first() != nil
    }

    /// Within a transaction holding the candidate's row: the stored receipt, or a new one when
    /// due (the candidate ended and the grace window after its end passed).
    static func issueReceipt(
        plan: ExamPlan, candidate: Candidate, endedBy: String?, now: Timestamp, graceSeconds: Int,
        sign: @Sendable (ReceiptFacts) throws -> String, _ db: any SQLDatabase
    ) async throws -> String? {
        if let body = try await storedReceipt(candidate.candidateId, db) { return body }
        guard let end = candidate.endTime(in: plan) else { return nil }
        // After the grace window nothing more is taken: the receipt's answers are final.
        guard now > end.adding(seconds: Int64(graceSeconds)) else { return nil }
        var answers: [Int: String] = [:]
        var lastSaved: Timestamp?
        for row in try await db.raw(
            "SELECT item_no, answer, saved_at FROM exam_answer WHERE candidate_id = \(bind: candidate.candidateId)"
        ).all() {
            let answer = try row.decode(column: "answer", as: String.self)
            if !answer.isEmpty { answers[try row.decode(column: "item_no", as: Int.self)] = answer }
            if let saved = try timestamp(row, "saved_at"), saved > (lastSaved ?? saved.adding(seconds: -1)) { lastSaved = saved }
        }
        let facts = ReceiptFacts(
            examId: plan.examId, candidateId: candidate.candidateId, endDatetime: end,
            endedBy: candidate.status == .completed && endedBy != nil ? endedBy ?? "exam" : "exam", answers: answers, lastSavedAt: lastSaved
        )
        let body = try sign(facts)
        try await db.raw(
            """
            INSERT INTO exam_receipt (candidate_id, plan_id, body, issued_at)
            VALUES (\(bind: candidate.candidateId), \(bind: plan.examId), \(bind: body), \(bind: now.iso8601))
            """
        ).run()
        try await audit(
            AuditEntry(
                examId: plan.examId, actor: "exambell", action: "receipt_issued", reason: nil,
                detail: "\(candidate.candidateId): \(answers.count) answered", at: now),
            db)
        return body
    }
}
