import ExamBellCore
import SQLKit

/// `AuditStore`: the audit log.
extension SQLExamStore {
    public func audit(_ entry: AuditEntry) async throws {
        try await transaction { db in try await Self.audit(entry, db) }
    }

    public func auditLog(examId: String, latest: Int?) async throws -> [AuditEntry] {
        try await connection { db in
            let query: SQLQueryString =
                if let latest {
                    """
                    SELECT * FROM (SELECT * FROM exam_audit_log WHERE plan_id = \(bind: examId) ORDER BY seq DESC LIMIT \(bind: latest)) recent
                    ORDER BY seq
                    """
                } else {
                    "SELECT * FROM exam_audit_log WHERE plan_id = \(bind: examId) ORDER BY seq"
                }
            return try await db.raw(query).all().map(Self.auditEntry)
        }
    }
}
