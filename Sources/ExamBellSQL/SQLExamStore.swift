import ExamBellCore
import ExamBellProof
import Logging
import SQLKit
import ServiceLifecycle

/// The DB store over any SQL backend: every query written once against `SQLDatabase`.
///
/// `SQLiteExamStore.open` builds it on SQLite; PostgreSQL gives it another `SQLExecutor`.
public struct SQLExamStore: ExamStore {
    let executor: any SQLExecutor
    /// Where this store's failed calls are counted, for the node's `/metrics`.
    let failures: BackendFailures
    /// Rows per multi-row INSERT or IN list: well under SQLite's and PostgreSQL's bind limits.
    static let chunkSize = 500

    public init(executor: any SQLExecutor, failures: BackendFailures = BackendFailures()) {
        self.executor = executor
        self.failures = failures
    }

    /// Runs one statement outside a transaction (administration: `CREATE DATABASE`).
    public func execute(_ statement: String) async throws {
        try await executor.withConnection { db in try await db.raw(SQLQueryString(statement)).run() }
    }

    /// Closes the backend's connections.
    /// What the node must run for this store to work (PostgreSQL's pool, when the node runs it).
    public var services: [any Service] { executor.services }

    public func shutdown() async throws {
        try await executor.shutdown()
    }

    // MARK: Helpers

    static func audit(_ entry: AuditEntry, _ db: any SQLDatabase) async throws {
        try await audit([entry], db)
    }

    /// Appends `entries` (all of one exam) to the audit log. Rows are written unlinked, so
    /// that a save or an end never waits for another node's append; `chainAudit` links them
    /// into the exam's hash chain in the order it finds them (a second or so later, and at once
    /// before an export).
    static func audit(_ entries: [AuditEntry], _ db: any SQLDatabase) async throws {
        for chunk in entries.chunked(Self.chunkSize / 2) {
            let rows: [SQLQueryString] = chunk.map { entry in
                """
                (\(bind: entry.examId), \(bind: entry.actor), \(bind: entry.action), \(bind: entry.reason), \(bind: entry.detail),
                \(bind: entry.at.iso8601))
                """
            }
            try await db.raw(
                "INSERT INTO exam_audit_log (plan_id, actor, action, reason, detail, at) VALUES " + rows.joined(separator: ", ")
            ).run()
        }
    }

    /// An audit row as stored.
    static func auditEntry(_ row: any SQLRow) throws -> AuditEntry {
        var entry = AuditEntry(
            examId: try row.decode(column: "plan_id", as: String.self),
            actor: try row.decode(column: "actor", as: String.self),
            action: try row.decode(column: "action", as: String.self),
            reason: try row.decode(column: "reason", as: String?.self),
            detail: try row.decode(column: "detail", as: String?.self),
            at: try timestamp(row, "at") ?? Timestamp(secondsSince1970: 0)
        )
        entry.seq = try row.decode(column: "seq", as: Int?.self)
        entry.prevHash = try row.decode(column: "prev_hash", as: String?.self)
        entry.hash = try row.decode(column: "hash", as: String?.self)
        return entry
    }

    /// Inserts an outbox row leased until `leaseUntil`; returns it.
    static func insertOutbox(_ content: OutboxEntry.Content, examId: String, at: Timestamp, leaseUntil: Timestamp, _ db: any SQLDatabase)
        async throws -> OutboxEntry
    {
        var entry = OutboxEntry(id: 0, examId: examId, content: content)
        let row = try await db.raw(
            """
            INSERT INTO exam_outbox (plan_id, topic, payload, created_at, claimed_until)
            VALUES (\(bind: examId), \(bind: entry.topic), \(bind: entry.payload), \(bind: at.iso8601), \(bind: leaseUntil.iso8601))
            RETURNING id
            """
        ).first()
        guard let id = try row?.decode(column: "id", as: Int64.self) else {
            throw StoreError.unavailable("The database did not return the outbox row.")
        }
        entry.id = id
        return entry
    }

    static func plan(_ examId: String, _ db: any SQLDatabase) async throws -> ExamPlan? {
        try await db.raw("SELECT * FROM exam_plan WHERE plan_id = \(bind: examId)").first().map(plan(from:))
    }

    /// The plan, or 404 `exam_not_found`.
    static func existingPlan(_ examId: String, _ db: any SQLDatabase) async throws -> ExamPlan {
        guard let plan = try await plan(examId, db) else { throw StoreError.examNotFound(examId) }
        return plan
    }

    static func plan(from row: any SQLRow) throws -> ExamPlan {
        let examId = try row.decode(column: "plan_id", as: String.self)
        let statusText = try row.decode(column: "status", as: String.self)
        guard let status = ExamStatus(rawValue: statusText) else {
            throw StoreError.unavailable("exam_plan \(examId) has an unknown status \(statusText).")
        }
        return ExamPlan(
            examId: examId,
            title: try row.decode(column: "title", as: String.self),
            status: status,
            createdAt: try timestamp(row, "created_at") ?? Timestamp(secondsSince1970: 0),
            startDatetime: try timestamp(row, "start_datetime"),
            scheduledEndDatetime: try timestamp(row, "scheduled_end_datetime"),
            endDatetime: try timestamp(row, "end_datetime"),
            endedBy: try row.decode(column: "ended_by", as: String?.self),
            endReason: try row.decode(column: "end_reason", as: String?.self),
            items: ExamItems(
                choice: try row.decode(column: "choice_items", as: Int.self), short: try row.decode(column: "short_items", as: Int.self)
            )
        )
    }

    static func candidate(from row: any SQLRow) throws -> Candidate {
        let id = try row.decode(column: "candidate_id", as: String.self)
        let statusText = try row.decode(column: "status", as: String.self)
        guard let status = CandidateStatus(rawValue: statusText) else {
            throw StoreError.unavailable("exam_candidate \(id) has an unknown status \(statusText).")
        }
        return Candidate(
            candidateId: id,
            examId: try row.decode(column: "plan_id", as: String.self),
            name: try row.decode(column: "name", as: String.self),
            status: status,
            lastActiveTime: try timestamp(row, "last_active_time"),
            acknowledgedAt: try timestamp(row, "acknowledged_at"),
            scheduledEndDatetime: try timestamp(row, "scheduled_end_datetime"),
            lockedAt: try timestamp(row, "locked_at"),
            finalSavedAt: try timestamp(row, "final_saved_at"),
            finalSavedItems: try row.decode(column: "final_saved_items", as: Int?.self),
            clockOffsetMs: try row.decode(column: "clock_offset_ms", as: Int?.self)
        )
    }

    static func timestamp(_ row: any SQLRow, _ column: String) throws -> Timestamp? {
        try row.decode(column: column, as: String?.self).flatMap(Timestamp.init(iso8601:))
    }

    /// Runs `body` in a transaction; a backend's failure becomes `StoreError.unavailable`.
    func transaction<R: Sendable>(
        timeLimit: Duration? = nil, _ body: @escaping @Sendable (any SQLDatabase) async throws -> R
    ) async throws -> R {
        try await mapErrors {
            if let timeLimit { try await executor.withLongTransaction(timeLimit: timeLimit, body) } else { try await executor.withTransaction(body) }
        }
    }

    /// Runs `body` on a connection; a backend's failure becomes `StoreError.unavailable`.
    func connection<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await mapErrors { try await executor.withConnection(body) }
    }

    private func mapErrors<R>(_ body: () async throws -> R) async throws -> R {
        do {
            return try await body()
        } catch let error as StoreError {
            if error.isUnavailable { failures.record(.database) }
            throw error
        } catch let error as ExamBellError {
            // A domain rule the store applied (like the answer window): the caller's mistake.
            throw error
        } catch let error as CancellationError {
            throw error
        } catch {
            failures.record(.database)
            throw StoreError.unavailable("The database could not complete the request (\(String(describing: type(of: error)))).")
        }
    }
}

extension Array {
    /// The array cut into consecutive pieces of at most `size` elements.
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
