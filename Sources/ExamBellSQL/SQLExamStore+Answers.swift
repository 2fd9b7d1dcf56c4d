import ExamBellCore
import SQLKit

/// `AnswerStore`: candidates' answer sheets, saved as `AnswerWindow` decides.
extension SQLExamStore {
    public func saveAnswers(candidateId: String, examId: String, _ answers: [Int: String], at: Timestamp, window: AnswerWindow)
        async throws -> AnswerSave
    {
        try await transaction { db in
            let plan = try await Self.existingPlan(examId, db)
            let owner = try await db.raw("SELECT plan_id FROM exam_candidate WHERE candidate_id = \(bind: candidateId)").first()
            guard try owner?.decode(column: "plan_id", as: String.self) == examId else {
                throw StoreError.notFound(code: "candidate_not_found", message: "\(candidateId) is not a candidate of exam \(examId).")
            }
            let items = answers.keys.sorted()
            let outcome = try window.decide(plan, at: at)
            if case .saved = outcome {
                try await db.raw(
                    """
                    UPDATE exam_candidate SET last_active_time = \(bind: at.iso8601)
                    WHERE candidate_id = \(bind: candidateId) AND (last_active_time IS NULL OR last_active_time < \(bind: at.iso8601))
                    """
                ).run()
            }
            if case .refused = outcome {
            } else {
                let rows: [SQLQueryString] = items.map { item in
                    "(\(bind: candidateId), \(bind: item), \(bind: examId), \(bind: answers[item] ?? ""), \(bind: at.iso8601))"
                }
                try await db.raw(
                    "INSERT INTO exam_answer (candidate_id, item_no, plan_id, answer, saved_at) VALUES "
                        + rows.joined(separator: ", ")
                        + " ON CONFLICT (candidate_id, item_no) DO UPDATE SET answer = excluded.answer, saved_at = excluded.saved_at"
                ).run()
            }
            let (action, detail) = window.audit(outcome, items: items, at: at)
            try await Self.audit(AuditEntry(examId: examId, actor: candidateId, action: action, reason: nil, detail: detail, at: at), db)
            return outcome
        }
    }

    public func answers(candidateId: String) async throws -> [Int: String] {
        try await connection { db in
            var result: [Int: String] = [:]
            let rows = try await db.raw(
                "SELECT item_no, answer FROM exam_answer WHERE candidate_id = \(bind: candidateId) AND answer <> ''"
            ).all()
            for row in rows {
                result[try row.decode(column: "item_no", as: Int.self)] = try row.decode(column: "answer", as: String.self)
            }
            return result
        }
    }

    public func answeredCounts(examId: String) async throws -> [String: Int] {
        try await connection { db in
            var result: [String: Int] = [:]
            let rows = try await db.raw(
                """
                SELECT candidate_id, COUNT(*) AS n FROM exam_answer
                WHERE plan_id = \(bind: examId) AND answer <> '' GROUP BY candidate_id
                """
            ).all()
            for row in rows {
                result[try row.decode(column: "candidate_id", as: String.self)] = try row.decode(column: "n", as: Int.self)
            }
            return result
        }
    }
}
