import ExamBellCore
import ExamBellProof
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
                    SELECT * FROM (SELECT * FROM exam_audit_log WHERE plan_id = \(bind: examId)
                        ORDER BY COALESCE(seq, \(bind: Self.unchainedLast)) DESC, id DESC LIMIT \(bind: latest)) recent
                    ORDER BY COALESCE(seq, \(bind: Self.unchainedLast)), id
                    """
                } else {
                    "SELECT * FROM exam_audit_log WHERE plan_id = \(bind: examId) ORDER BY COALESCE(seq, \(bind: Self.unchainedLast)), id"
                }
            return try await db.raw(query).all().map(Self.auditEntry)
        }
    }

    /// Where rows not yet linked sort: after every linked one, in the order they were written.
    static let unchainedLast = Int(Int32.max)

    public func chainAudit(examId: String?) async throws -> Int {
        let exams: [String]
        if let examId {
            exams = [examId]
        } else {
            exams = try await connection { db in
                try await db.raw("SELECT DISTINCT plan_id FROM exam_audit_log WHERE hash IS NULL LIMIT 100").all()
                    .map { try $0.decode(column: "plan_id", as: String.self) }
            }
        }
        var linked = 0
        for exam in exams {
            linked += try await transaction { db in try await Self.chainPending(exam, db) }
        }
        return linked
    }

    /// Links the exam's unlinked rows (a bounded batch) after its chain's head, holding the
    /// head row so that chainers on several nodes take turns: one order, every row once.
    static func chainPending(_ examId: String, _ db: any SQLDatabase) async throws -> Int {
        try await db.raw(
            """
            INSERT INTO exam_audit_head (plan_id, seq, hash) VALUES (\(bind: examId), 0, \(bind: AuditChain.genesis))
            ON CONFLICT (plan_id) DO NOTHING
            """
        ).run()
        let lock: SQLQueryString = db.dialect.name == "postgresql" ? " FOR UPDATE" : ""
        guard let head = try await db.raw("SELECT seq, hash FROM exam_audit_head WHERE plan_id = \(bind: examId)" + lock).first() else {
            return 0
        }
        let rows = try await db.raw(
            "SELECT * FROM exam_audit_log WHERE plan_id = \(bind: examId) AND hash IS NULL ORDER BY id LIMIT \(bind: Self.chainedPerPass)"
        ).all()
        guard !rows.isEmpty else { return 0 }
        let ids = try rows.map { try $0.decode(column: "id", as: Int64.self) }
        let linked = AuditChain.link(
            try rows.map(Self.auditEntry),
            after: (try head.decode(column: "seq", as: Int.self), try head.decode(column: "hash", as: String.self)))
        for (id, entry) in zip(ids, linked) {
            try await db.raw(
                """
                UPDATE exam_audit_log SET seq = \(bind: entry.seq), prev_hash = \(bind: entry.prevHash), hash = \(bind: entry.hash)
                WHERE id = \(bind: id)
                """
            ).run()
        }
        try await db.raw(
            "UPDATE exam_audit_head SET seq = \(bind: linked.last?.seq), hash = \(bind: linked.last?.hash) WHERE plan_id = \(bind: examId)"
        ).run()
        return linked.count
    }

    /// Rows one pass links per exam at most (an end of 10,000 candidates takes a few passes).
    static let chainedPerPass = 2000
}
