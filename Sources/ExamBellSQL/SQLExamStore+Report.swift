import ExamBellCore
import Foundation
import SQLKit

/// `ReportStore`: what the exam report reads beside the candidates, in one read each.
extension SQLExamStore {
    public func reportFacts(examId: String) async throws -> ReportFacts {
        try await connection { db in
            _ = try await Self.existingPlan(examId, db)
            var lastSaved: [String: Timestamp] = [:]
            // Times are one fixed-width text format, so the greatest text is the latest time.
            for row in try await db.raw(
                "SELECT candidate_id, MAX(saved_at) AS saved FROM exam_answer WHERE plan_id = \(bind: examId) GROUP BY candidate_id"
            ).all() {
                if let saved = try Self.timestamp(row, "saved") { lastSaved[try row.decode(column: "candidate_id", as: String.self)] = saved }
            }
            var endedBy: [String: String] = [:]
            for row in try await db.raw(
                "SELECT candidate_id, ended_by FROM exam_candidate WHERE plan_id = \(bind: examId) AND ended_by IS NOT NULL"
            ).all() {
                endedBy[try row.decode(column: "candidate_id", as: String.self)] = try row.decode(column: "ended_by", as: String.self)
            }
            let changes = try await db.raw(
                "SELECT * FROM exam_time_change WHERE plan_id = \(bind: examId) ORDER BY id"
            ).all().map { row in
                let ends = try row.decode(column: "ends", as: String.self)
                return TimeChangeRecord(
                    at: try Self.timestamp(row, "at") ?? Timestamp(secondsSince1970: 0),
                    actor: try row.decode(column: "actor", as: String.self),
                    reason: try row.decode(column: "reason", as: String?.self),
                    everyone: try row.decode(column: "everyone", as: Int.self) != 0,
                    scheduledEndDatetime: try Self.timestamp(row, "scheduled_end_datetime") ?? Timestamp(secondsSince1970: 0),
                    ends: try JSONDecoder().decode([String: Timestamp].self, from: Data(ends.utf8))
                )
            }
            return ReportFacts(lastSavedAt: lastSaved, endedBy: endedBy, timeChanges: changes)
        }
    }
}
