import ExamBellCore
import Foundation
import SQLKit

/// `AnswerStore`: candidates' answer sheets, saved as `AnswerWindow` decides.
extension SQLExamStore {
    public func saveAnswers(
        candidateId: String, examId: String, _ answers: [Int: String], at: Timestamp, window: AnswerWindow, final: Bool
    ) async throws -> AnswerSave {
        try await transaction { db in
            let plan = try await Self.existingPlan(examId, db)
            // The row is held until the save commits: a receipt issued meanwhile waits for it
            // (and one issued before refuses it below).
            let lock: SQLQueryString = db.dialect.name == "postgresql" ? " FOR UPDATE" : ""
            let row = try await db.raw("SELECT * FROM exam_candidate WHERE candidate_id = \(bind: candidateId)" + lock).first()
            guard let row, case let candidate = try Self.candidate(from: row), candidate.examId == examId else {
                throw StoreError.notFound(code: "candidate_not_found", message: "\(candidateId) is not a candidate of exam \(examId).")
            }
            let items = answers.keys.sorted()
            var outcome = try window.decide(plan, candidate: candidate, at: at)
            // A receipt states the answers as stored when it was issued: none are taken after it.
            if case .savedLate(_, let end) = outcome, try await Self.hasReceipt(candidateId, db) {
                outcome = .refused(endDatetime: end)
            }
            // A late save gathered into an open late submission was audited with its first; saves
            // while the exam runs, once a minute (`AnswerWindow.audits`).
            var audited = true
            switch outcome {
            case .saved:
                audited = window.audits(
                    outcome, at: at, lastAudited: try Self.timestamp(row, "saves_audited_at"),
                    firstFinal: final && candidate.finalSavedAt == nil)
                try await db.raw(
                    """
                    UPDATE exam_candidate SET last_active_time = \(bind: at.iso8601)
                    WHERE candidate_id = \(bind: candidateId) AND (last_active_time IS NULL OR last_active_time < \(bind: at.iso8601))
                    """
                ).run()
                if audited {
                    try await db.raw(
                        "UPDATE exam_candidate SET saves_audited_at = \(bind: at.iso8601) WHERE candidate_id = \(bind: candidateId)"
                    ).run()
                }
            case .refused(let end) where !items.isEmpty:
                // Not taken into the sheet, and not dropped: kept for the operator to decide on,
                // within the candidate's budget. A later attempt updates the open row.
                audited = try await !Self.keepLate(
                    answers, candidateId: candidateId, examId: examId, end: end, at: at, window: window, db)
            default:
                break
            }
            if case .refused = outcome {
            } else if !items.isEmpty {
                let rows: [SQLQueryString] = items.map { item in
                    "(\(bind: candidateId), \(bind: item), \(bind: examId), \(bind: answers[item] ?? ""), \(bind: at.iso8601))"
                }
                try await db.raw(
                    "INSERT INTO exam_answer (candidate_id, item_no, plan_id, answer, saved_at) VALUES "
                        + rows.joined(separator: ", ")
                        + " ON CONFLICT (candidate_id, item_no) DO UPDATE SET answer = excluded.answer, saved_at = excluded.saved_at"
                ).run()
            }
            if final {
                // The `saved` step: the page's last answers after its lock reached the server.
                let answered = answers.values.filter { !$0.isEmpty }.count
                try await db.raw(
                    """
                    UPDATE exam_candidate SET final_saved_at = \(bind: at.iso8601), final_saved_items = \(bind: answered)
                    WHERE candidate_id = \(bind: candidateId)
                    """
                ).run()
            }
            guard audited else { return outcome }
            let (action, detail) = window.audit(outcome, items: items, at: at)
            try await Self.audit(
                AuditEntry(
                    examId: examId, actor: candidateId, action: action, reason: nil, detail: final ? detail + " (final save)" : detail,
                    at: at
                ),
                db
            )
            return outcome
        }
    }

    /// Merges refused `answers` into the candidate's open late submission (the latest answer of
    /// each item), or opens one; 413 `budget_exceeded` when the result would pass the
    /// window's byte budget. Returns true when an open row was updated (its first attempt was
    /// audited; later ones are counted in it, not audited one by one).
    static func keepLate(
        _ answers: [Int: String], candidateId: String, examId: String, end: Timestamp, at: Timestamp, window: AnswerWindow,
        _ db: any SQLDatabase
    ) async throws -> Bool {
        // One late save of a candidate at a time (PostgreSQL; SQLite's writes are serial).
        if db.dialect.name == "postgresql" {
            try await db.raw("SELECT candidate_id FROM exam_candidate WHERE candidate_id = \(bind: candidateId) FOR UPDATE").run()
        }
        let open = try await db.raw(
            "SELECT id, answers FROM exam_late_submission WHERE open_key = \(bind: candidateId)"
        ).first()
        var merged: [Int: String] = [:]
        if let open {
            let text = try open.decode(column: "answers", as: String.self)
            let old = (try? JSONDecoder().decode([String: String].self, from: Data(text.utf8))) ?? [:]
            for (key, value) in old { if let item = Int(key) { merged[item] = value } }
        }
        merged.merge(answers) { _, new in new }
        let json = answersJSON(merged)
        guard json.utf8.count <= window.lateBytesPerCandidate else { throw window.lateBudgetExceeded() }
        if let open {
            let id = try open.decode(column: "id", as: Int64.self)
            try await db.raw(
                """
                UPDATE exam_late_submission SET answers = \(bind: json), arrived_at = \(bind: at.iso8601),
                end_datetime = \(bind: end.iso8601), attempts = attempts + 1 WHERE id = \(bind: id)
                """
            ).run()
            return true
        }
        try await db.raw(
            """
            INSERT INTO exam_late_submission (plan_id, candidate_id, answers, arrived_at, end_datetime, open_key)
            VALUES (\(bind: examId), \(bind: candidateId), \(bind: json), \(bind: at.iso8601), \(bind: end.iso8601), \(bind: candidateId))
            """
        ).run()
        return false
    }

    /// Answers by item number as a JSON object text (`{"1":"3"}`), items in order.
    static func answersJSON(_ answers: [Int: String]) -> String {
        "{" + answers.keys.sorted().map { "\(JSONText.string(String($0))):\(JSONText.string(answers[$0] ?? ""))" }.joined(separator: ",") + "}"
    }

    public func lateSubmissions(examId: String, after: Int64?, limit: Int) async throws -> [LateSubmission] {
        try await connection { db in
            try await db.raw(
                """
                SELECT * FROM exam_late_submission WHERE plan_id = \(bind: examId) AND id > \(bind: after ?? 0)
                ORDER BY id LIMIT \(bind: max(0, limit))
                """
            ).all().map(Self.lateSubmission(from:))
        }
    }

    public func decideLateSubmission(examId: String, id: Int64, accept: Bool, actor: String, reason: String?, at: Timestamp)
        async throws -> LateSubmission
    {
        try await transaction { db in
            let decision = accept ? "accepted" : "rejected"
            let decided = try await db.raw(
                """
                UPDATE exam_late_submission
                SET decision = \(bind: decision), decided_by = \(bind: actor), decided_at = \(bind: at.iso8601), open_key = NULL
                WHERE id = \(bind: id) AND plan_id = \(bind: examId) AND decision IS NULL
                RETURNING id
                """
            ).first()
            let row = try await db.raw("SELECT * FROM exam_late_submission WHERE id = \(bind: id) AND plan_id = \(bind: examId)").first()
            guard let submission = try row.map(Self.lateSubmission(from:)) else {
                throw StoreError.notFound(code: "late_submission_not_found", message: "Exam \(examId) has no late submission \(id).")
            }
            guard decided != nil else {
                throw StoreError.conflict(
                    code: "already_decided", message: "Late submission \(id) was \(submission.decision ?? "decided") already."
                )
            }
            if accept {
                // Into the sheet, as of its arrival: an answer the sheet got later stays.
                for (key, answer) in submission.answers.sorted(by: { $0.key < $1.key }) {
                    guard let item = Int(key) else { continue }
                    try await db.raw(
                        """
                        INSERT INTO exam_answer (candidate_id, item_no, plan_id, answer, saved_at)
                        VALUES (\(bind: submission.candidateId), \(bind: item), \(bind: examId), \(bind: answer), \(bind: submission.arrivedAt.iso8601))
                        ON CONFLICT (candidate_id, item_no) DO UPDATE SET answer = excluded.answer, saved_at = excluded.saved_at
                        WHERE exam_answer.saved_at <= excluded.saved_at
                        """
                    ).run()
                }
            }
            try await Self.audit(
                AuditEntry(
                    examId: examId, actor: actor, action: "late_submission_\(decision)", reason: reason,
                    detail: "\(id) of \(submission.candidateId): items \(submission.answers.keys.sorted().joined(separator: ", "))", at: at
                ), db
            )
            var result = submission
            result.decision = decision
            result.decidedBy = actor
            result.decidedAt = at
            return result
        }
    }

    static func lateSubmission(from row: any SQLRow) throws -> LateSubmission {
        let arrived = try timestamp(row, "arrived_at") ?? Timestamp(secondsSince1970: 0)
        let end = try timestamp(row, "end_datetime") ?? arrived
        let text = try row.decode(column: "answers", as: String.self)
        return LateSubmission(
            id: try row.decode(column: "id", as: Int64.self), examId: try row.decode(column: "plan_id", as: String.self),
            candidateId: try row.decode(column: "candidate_id", as: String.self),
            answers: (try? JSONDecoder().decode([String: String].self, from: Data(text.utf8))) ?? [:], arrivedAt: arrived,
            secondsAfterEnd: arrived.secondsSince1970 - end.secondsSince1970,
            attempts: (try? row.decode(column: "attempts", as: Int.self)) ?? 1, decision: try row.decode(column: "decision", as: String?.self),
            decidedBy: try row.decode(column: "decided_by", as: String?.self), decidedAt: try timestamp(row, "decided_at")
        )
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
