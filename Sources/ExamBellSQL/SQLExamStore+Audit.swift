import ExamBellCore
import SQLKit

/// `AuditStore`: the audit log.
extension SQLExamStore {
    public func audit(_ entry: AuditEntry) async throws {
        try await connection { db in try await Self.audit(entry, db) }
    }

    public func auditLog(examId: String, latest: Int?) async throws -> [AuditEntry] {
        try await connection { db in
            let query: SQLQueryString =
                if let latest {
                    """
                    SELECT * FROM (SELECT * FROM exam_audit_log WHERE plan_id = \(bind: examId) ORDER BY id DESC LIMIT \(bind: latest)) recent
                    ORDER BY id
                    """
                } else {
                    "SELECT * FROM exam_audit_log WHERE plan_id = \(bind: examId) ORDER BY id"
                }
            return try await db.raw(query).all().map { row in
                AuditEntry(
                    examId: try row.decode(column: "plan_id", as: String.self),
                    actor: try row.decode(column: "actor", as: String.self),
                    action: try row.decode(column: "action", as: String.self),
                    reason: try row.decode(column: "reason", as: String?.self),
                    detail: try row.decode(column: "detail", as: String?.self),
                    at: try Self.timestamp(row, "at") ?? Timestamp(secondsSince1970: 0)
                )
            }
        }
    }
}
