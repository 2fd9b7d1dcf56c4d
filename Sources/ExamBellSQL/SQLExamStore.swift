import ExamBellCore
import Logging
import SQLKit

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
    public func shutdown() async throws {
        try await executor.shutdown()
    }

    // MARK: Exams

    public func createExam(
        planId: String, title: String, items: ExamItems, scheduledEnd: Timestamp?, actor: String, at: Timestamp
    ) async throws -> ExamPlan {
        try items.validate()
        return try await transaction { db in
            if try await Self.plan(planId, db) != nil {
                throw ExamBellError.conflict(code: "exam_exists", "An exam with id \(planId) exists already.")
            }
            try await db.raw(
                """
                INSERT INTO exam_plan (plan_id, title, status, created_at, scheduled_end_datetime, choice_items, short_items)
                VALUES (\(bind: planId), \(bind: title), \(bind: ExamStatus.scheduled.rawValue), \(bind: at.iso8601),
                    \(bind: scheduledEnd?.iso8601), \(bind: items.choice), \(bind: items.short))
                """
            ).run()
            try await Self.audit(AuditEntry(planId: planId, actor: actor, action: "create", reason: nil, detail: title, at: at), db)
            return ExamPlan(
                planId: planId, title: title, status: .scheduled, createdAt: at, scheduledEndDatetime: scheduledEnd, items: items
            )
        }
    }

    public func exam(_ planId: String) async throws -> ExamPlan? {
        try await connection { db in try await Self.plan(planId, db) }
    }

    public func exams() async throws -> [ExamPlan] {
        try await connection { db in
            try await db.raw("SELECT * FROM exam_plan ORDER BY created_at DESC, plan_id").all().map(Self.plan(from:))
        }
    }

    public func candidateCounts(planId: String) async throws -> [CandidateStatus: Int] {
        try await connection { db in
            var counts: [CandidateStatus: Int] = [:]
            let rows = try await db.raw(
                "SELECT status, COUNT(*) AS n FROM exam_candidate WHERE plan_id = \(bind: planId) GROUP BY status"
            ).all()
            for row in rows {
                if let status = CandidateStatus(rawValue: try row.decode(column: "status", as: String.self)) {
                    counts[status] = try row.decode(column: "n", as: Int.self)
                }
            }
            return counts
        }
    }

    public func completeCandidates(planId: String, at endDatetime: Timestamp) async throws {
        try await transaction { db in
            try await db.raw(
                """
                UPDATE exam_candidate SET status = \(bind: CandidateStatus.completed.rawValue),
                    last_active_time = \(bind: endDatetime.iso8601)
                WHERE plan_id = \(bind: planId) AND status <> \(bind: CandidateStatus.completed.rawValue)
                """
            ).run()
        }
    }

    public func candidateIds(planId: String) async throws -> [String] {
        try await connection { db in
            try await db.raw("SELECT candidate_id FROM exam_candidate WHERE plan_id = \(bind: planId) ORDER BY candidate_id").all()
                .map { try $0.decode(column: "candidate_id", as: String.self) }
        }
    }

    public func examsDueToEnd(at time: Timestamp) async throws -> [String] {
        try await connection { db in
            try await db.raw(
                """
                SELECT plan_id FROM exam_plan
                WHERE status = \(bind: ExamStatus.inProgress.rawValue) AND scheduled_end_datetime IS NOT NULL
                    AND scheduled_end_datetime <= \(bind: time.iso8601)
                ORDER BY scheduled_end_datetime, plan_id
                """
            ).all().map { try $0.decode(column: "plan_id", as: String.self) }
        }
    }

    public func startExam(planId: String, actor: String, at: Timestamp) async throws -> ExamPlan {
        try await transaction { db in
            let started = try await db.raw(
                """
                UPDATE exam_plan SET status = \(bind: ExamStatus.inProgress.rawValue), start_datetime = \(bind: at.iso8601)
                WHERE plan_id = \(bind: planId) AND status = \(bind: ExamStatus.scheduled.rawValue)
                RETURNING plan_id
                """
            ).first()
            guard started != nil else {
                let plan = try await Self.existingPlan(planId, db)
                throw ExamBellError.wrongState(planId, is: plan.status, action: "start")
            }
            try await db.raw(
                """
                UPDATE exam_candidate SET status = \(bind: CandidateStatus.inProgress.rawValue)
                WHERE plan_id = \(bind: planId) AND status = \(bind: CandidateStatus.registered.rawValue)
                """
            ).run()
            try await Self.audit(AuditEntry(planId: planId, actor: actor, action: "start", reason: nil, detail: nil, at: at), db)
            let plan = try await Self.existingPlan(planId, db)
            return plan
        }
    }

    public func endExam(
        planId: String, at endDatetime: Timestamp, actor: String, reason: String?, leaseUntil: Timestamp
    ) async throws -> EndTransition {
        try await transaction { db in
            let ended = try await db.raw(
                """
                UPDATE exam_plan SET status = \(bind: ExamStatus.completed.rawValue),
                    end_datetime = \(bind: endDatetime.iso8601), ended_by = \(bind: actor), end_reason = \(bind: reason)
                WHERE plan_id = \(bind: planId) AND status = \(bind: ExamStatus.inProgress.rawValue)
                RETURNING plan_id
                """
            ).first()
            guard ended != nil else {
                let plan = try await Self.existingPlan(planId, db)
                guard plan.status == .completed else { throw ExamBellError.wrongState(planId, is: plan.status, action: "end") }
                return .alreadyCompleted(plan)
            }
            let message = ExamEndQueueMessage(examId: planId, timestamp: endDatetime)
            let outboxRow = try await db.raw(
                """
                INSERT INTO exam_outbox (plan_id, topic, payload, created_at, claimed_until)
                VALUES (\(bind: planId), \(bind: "queue:exam_end"), \(bind: message.json), \(bind: endDatetime.iso8601),
                    \(bind: leaseUntil.iso8601))
                RETURNING id
                """
            ).first()
            guard let outboxId = try outboxRow?.decode(column: "id", as: Int64.self) else {
                throw ExamBellError.unavailable("The database did not return the outbox row.")
            }
            try await Self.audit(
                AuditEntry(planId: planId, actor: actor, action: "end", reason: reason, detail: nil, at: endDatetime), db
            )
            let plan = try await Self.existingPlan(planId, db)
            return .ended(plan, outbox: OutboxEntry(id: outboxId, planId: planId, message: message))
        }
    }

    // MARK: People

    public func registerCandidates(planId: String, _ people: [Registrant], actor: String, at: Timestamp) async throws
        -> RegistrationResult
    {
        try await register(.candidates, planId: planId, people, actor: actor, at: at)
    }

    public func registerProctors(planId: String, _ people: [Registrant], actor: String, at: Timestamp) async throws
        -> RegistrationResult
    {
        try await register(.proctors, planId: planId, people, actor: actor, at: at)
    }

    /// The two tables of people differ only in names and in whether rows carry a status.
    private struct PeopleTable: Sendable {
        var table: String
        var idColumn: String
        var hasStatus: Bool
        var noun: String

        static let candidates = PeopleTable(table: "exam_candidate", idColumn: "candidate_id", hasStatus: true, noun: "candidate")
        static let proctors = PeopleTable(table: "exam_proctor", idColumn: "proctor_id", hasStatus: false, noun: "proctor")
    }

    private func register(_ kind: PeopleTable, planId: String, _ people: [Registrant], actor: String, at: Timestamp)
        async throws -> RegistrationResult
    {
        try await transaction(timeLimit: .seconds(60)) { db in
            let plan = try await Self.existingPlan(planId, db)
            guard plan.status != .completed else {
                throw ExamBellError.wrongState(planId, is: plan.status, action: "take new \(kind.noun)s")
            }
            var existing: [String: (planId: String, name: String)] = [:]
            for chunk in people.map(\.id).chunked(Self.chunkSize) {
                let rows = try await db.raw(
                    """
                    SELECT \(ident: kind.idColumn) AS id, plan_id, name FROM \(ident: kind.table)
                    WHERE \(ident: kind.idColumn) IN (\(binds: Array(chunk)))
                    """
                ).all()
                for row in rows {
                    existing[try row.decode(column: "id", as: String.self)] = (
                        try row.decode(column: "plan_id", as: String.self), try row.decode(column: "name", as: String.self)
                    )
                }
            }
            let taken = existing.filter { $0.value.planId != planId }.keys.sorted()
            if !taken.isEmpty {
                throw ExamBellError.conflict(
                    code: "\(kind.noun)_in_other_exam",
                    "\(taken.count) \(kind.noun) id(s) belong to another exam, e.g. \(taken.prefix(5).joined(separator: ", "))."
                )
            }
            let fresh = people.filter { existing[$0.id] == nil }
            let status = CandidateStatus.following(plan.status).rawValue
            for chunk in fresh.chunked(Self.chunkSize) {
                let rows: [SQLQueryString] = chunk.map { person in
                    kind.hasStatus
                        ? "(\(bind: person.id), \(bind: planId), \(bind: person.name), \(bind: status))"
                        : "(\(bind: person.id), \(bind: planId), \(bind: person.name))"
                }
                let columns: SQLQueryString =
                    kind.hasStatus
                    ? "(\(ident: kind.idColumn), plan_id, name, status)" : "(\(ident: kind.idColumn), plan_id, name)"
                try await db.raw("INSERT INTO \(ident: kind.table) " + columns + " VALUES " + rows.joined(separator: ", ")).run()
            }
            for person in people where existing[person.id].map({ $0.name != person.name }) == true {
                try await db.raw(
                    "UPDATE \(ident: kind.table) SET name = \(bind: person.name) WHERE \(ident: kind.idColumn) = \(bind: person.id)"
                ).run()
            }
            let result = RegistrationResult(added: fresh.count, existing: people.count - fresh.count)
            try await Self.audit(
                AuditEntry(
                    planId: planId, actor: actor, action: "register_\(kind.noun)s", reason: nil,
                    detail: "added \(result.added), already registered \(result.existing)", at: at
                ), db
            )
            return result
        }
    }

    public func candidates(planId: String) async throws -> [Candidate] {
        try await connection { db in
            try await db.raw("SELECT * FROM exam_candidate WHERE plan_id = \(bind: planId) ORDER BY candidate_id").all()
                .map(Self.candidate(from:))
        }
    }

    public func candidates(ids: [String]) async throws -> [Candidate] {
        try await connection { db in
            var result: [Candidate] = []
            for chunk in ids.chunked(Self.chunkSize) {
                result += try await db.raw("SELECT * FROM exam_candidate WHERE candidate_id IN (\(binds: Array(chunk)))").all()
                    .map(Self.candidate(from:))
            }
            return result
        }
    }

    public func proctors(planId: String) async throws -> [Proctor] {
        try await connection { db in
            try await db.raw("SELECT * FROM exam_proctor WHERE plan_id = \(bind: planId) ORDER BY proctor_id").all().map {
                Proctor(
                    proctorId: try $0.decode(column: "proctor_id", as: String.self),
                    planId: try $0.decode(column: "plan_id", as: String.self),
                    name: try $0.decode(column: "name", as: String.self)
                )
            }
        }
    }

    public func applyCandidateActivity(_ activity: [String: CandidateStateValue]) async throws -> Int {
        guard !activity.isEmpty else { return 0 }
        return try await transaction { db in
            var changed = 0
            for (id, state) in activity.sorted(by: { $0.key < $1.key }) {
                var updated = false
                if let time = state.lastActiveTime?.iso8601 {
                    updated = try await db.raw(
                        """
                        UPDATE exam_candidate SET last_active_time = \(bind: time)
                        WHERE candidate_id = \(bind: id) AND (last_active_time IS NULL OR last_active_time < \(bind: time))
                        RETURNING candidate_id
                        """
                    ).first() != nil
                }
                // A status only moves forward: these are the statuses it may come from.
                let earlier = CandidateStatus.allCases.filter { $0.canMove(to: state.status) }.map(\.rawValue)
                if !earlier.isEmpty {
                    let moved = try await db.raw(
                        """
                        UPDATE exam_candidate SET status = \(bind: state.status.rawValue)
                        WHERE candidate_id = \(bind: id) AND status IN (\(binds: earlier))
                        RETURNING candidate_id
                        """
                    ).first() != nil
                    updated = updated || moved
                }
                if updated { changed += 1 }
            }
            return changed
        }
    }

    public func recordAcknowledgements(_ times: [String: Timestamp]) async throws -> Int {
        guard !times.isEmpty else { return 0 }
        return try await transaction { db in
            var changed = 0
            for (id, time) in times.sorted(by: { $0.key < $1.key }) {
                let updated = try await db.raw(
                    """
                    UPDATE exam_candidate SET acknowledged_at = \(bind: time.iso8601)
                    WHERE candidate_id = \(bind: id) AND acknowledged_at IS NULL
                    RETURNING candidate_id
                    """
                ).first()
                if updated != nil { changed += 1 }
            }
            return changed
        }
    }

    // MARK: Answers

    public func saveAnswers(candidateId: String, planId: String, _ answers: [Int: String], at: Timestamp, graceSeconds: Int)
        async throws -> AnswerSave
    {
        try await transaction { db in
            let plan = try await Self.existingPlan(planId, db)
            let owner = try await db.raw("SELECT plan_id FROM exam_candidate WHERE candidate_id = \(bind: candidateId)").first()
            guard try owner?.decode(column: "plan_id", as: String.self) == planId else {
                throw ExamBellError(status: 404, code: "candidate_not_found", message: "\(candidateId) is not a candidate of exam \(planId).")
            }
            let items = answers.keys.sorted()
            let itemList = items.map(String.init).joined(separator: ", ")
            let outcome: AnswerSave
            switch plan.status {
            case .scheduled:
                throw ExamBellError.conflict(code: "exam_not_started", "Exam \(planId) has not started; answers are taken once it runs.")
            case .inProgress:
                outcome = .saved(at: at)
            case .completed:
                let end = plan.endDatetime ?? at
                outcome = at <= end.adding(seconds: Int64(graceSeconds)) ? .savedLate(at: at, endDatetime: end) : .refused(endDatetime: end)
            }
            let action: String
            var detail = "items \(itemList)"
            switch outcome {
            case .saved:
                action = "answers_saved"
                try await db.raw(
                    """
                    UPDATE exam_candidate SET last_active_time = \(bind: at.iso8601)
                    WHERE candidate_id = \(bind: candidateId) AND (last_active_time IS NULL OR last_active_time < \(bind: at.iso8601))
                    """
                ).run()
            case .savedLate(_, let end):
                action = "answers_saved_late"
                detail += ", \(at.secondsSince1970 - end.secondsSince1970) s after the end (within the \(graceSeconds) s grace window)"
            case .refused(let end):
                action = "answers_refused"
                detail += ", \(at.secondsSince1970 - end.secondsSince1970) s after the end (grace window \(graceSeconds) s)"
            }
            if case .refused = outcome {} else {
                let rows: [SQLQueryString] = items.map { item in
                    "(\(bind: candidateId), \(bind: item), \(bind: planId), \(bind: answers[item] ?? ""), \(bind: at.iso8601))"
                }
                try await db.raw(
                    "INSERT INTO exam_answer (candidate_id, item_no, plan_id, answer, saved_at) VALUES "
                        + rows.joined(separator: ", ")
                        + " ON CONFLICT (candidate_id, item_no) DO UPDATE SET answer = excluded.answer, saved_at = excluded.saved_at"
                ).run()
            }
            try await Self.audit(AuditEntry(planId: planId, actor: candidateId, action: action, reason: nil, detail: detail, at: at), db)
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

    public func answeredCounts(planId: String) async throws -> [String: Int] {
        try await connection { db in
            var result: [String: Int] = [:]
            let rows = try await db.raw(
                """
                SELECT candidate_id, COUNT(*) AS n FROM exam_answer
                WHERE plan_id = \(bind: planId) AND answer <> '' GROUP BY candidate_id
                """
            ).all()
            for row in rows {
                result[try row.decode(column: "candidate_id", as: String.self)] = try row.decode(column: "n", as: Int.self)
            }
            return result
        }
    }

    // MARK: Outbox and audit

    public func claimOutbox(now: Timestamp, leaseUntil: Timestamp, limit: Int) async throws -> [OutboxEntry] {
        try await transaction { db in
            let rows = try await db.raw(
                """
                SELECT id, plan_id, payload FROM exam_outbox
                WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < \(bind: now.iso8601))
                ORDER BY id LIMIT \(bind: limit)
                """
            ).all()
            var entries: [OutboxEntry] = []
            for row in rows {
                let id = try row.decode(column: "id", as: Int64.self)
                let claimed = try await db.raw(
                    """
                    UPDATE exam_outbox SET claimed_until = \(bind: leaseUntil.iso8601)
                    WHERE id = \(bind: id) AND published_at IS NULL
                        AND (claimed_until IS NULL OR claimed_until < \(bind: now.iso8601))
                    RETURNING id
                    """
                ).first()
                guard claimed != nil else { continue }
                let message = try ExamEndQueueMessage(json: try row.decode(column: "payload", as: String.self))
                entries.append(OutboxEntry(id: id, planId: try row.decode(column: "plan_id", as: String.self), message: message))
            }
            return entries
        }
    }

    public func markPublished(outboxId: Int64, at: Timestamp) async throws {
        try await connection { db in
            try await db.raw("UPDATE exam_outbox SET published_at = \(bind: at.iso8601) WHERE id = \(bind: outboxId)").run()
        }
    }

    public func outboxBacklog() async throws -> Int {
        try await connection { db in
            try await db.raw("SELECT COUNT(*) AS n FROM exam_outbox WHERE published_at IS NULL").first()?
                .decode(column: "n", as: Int.self) ?? 0
        }
    }

    public func audit(_ entry: AuditEntry) async throws {
        try await connection { db in try await Self.audit(entry, db) }
    }

    public func auditLog(planId: String) async throws -> [AuditEntry] {
        try await connection { db in
            try await db.raw("SELECT * FROM exam_audit_log WHERE plan_id = \(bind: planId) ORDER BY id").all().map { row in
                AuditEntry(
                    planId: try row.decode(column: "plan_id", as: String.self),
                    actor: try row.decode(column: "actor", as: String.self),
                    action: try row.decode(column: "action", as: String.self),
                    reason: try row.decode(column: "reason", as: String?.self),
                    detail: try row.decode(column: "detail", as: String?.self),
                    at: try Self.timestamp(row, "at") ?? Timestamp(secondsSince1970: 0)
                )
            }
        }
    }

    // MARK: Helpers

    private static func audit(_ entry: AuditEntry, _ db: any SQLDatabase) async throws {
        try await db.raw(
            """
            INSERT INTO exam_audit_log (plan_id, actor, action, reason, detail, at)
            VALUES (\(bind: entry.planId), \(bind: entry.actor), \(bind: entry.action), \(bind: entry.reason),
                \(bind: entry.detail), \(bind: entry.at.iso8601))
            """
        ).run()
    }

    private static func plan(_ planId: String, _ db: any SQLDatabase) async throws -> ExamPlan? {
        try await db.raw("SELECT * FROM exam_plan WHERE plan_id = \(bind: planId)").first().map(plan(from:))
    }

    /// The plan, or 404 `exam_not_found`.
    private static func existingPlan(_ planId: String, _ db: any SQLDatabase) async throws -> ExamPlan {
        guard let plan = try await plan(planId, db) else { throw ExamBellError.examNotFound(planId) }
        return plan
    }

    private static func plan(from row: any SQLRow) throws -> ExamPlan {
        let planId = try row.decode(column: "plan_id", as: String.self)
        let statusText = try row.decode(column: "status", as: String.self)
        guard let status = ExamStatus(rawValue: statusText) else {
            throw ExamBellError.unavailable("exam_plan \(planId) has an unknown status \(statusText).")
        }
        return ExamPlan(
            planId: planId,
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

    private static func candidate(from row: any SQLRow) throws -> Candidate {
        let id = try row.decode(column: "candidate_id", as: String.self)
        let statusText = try row.decode(column: "status", as: String.self)
        guard let status = CandidateStatus(rawValue: statusText) else {
            throw ExamBellError.unavailable("exam_candidate \(id) has an unknown status \(statusText).")
        }
        return Candidate(
            candidateId: id,
            planId: try row.decode(column: "plan_id", as: String.self),
            name: try row.decode(column: "name", as: String.self),
            status: status,
            lastActiveTime: try timestamp(row, "last_active_time"),
            acknowledgedAt: try timestamp(row, "acknowledged_at")
        )
    }

    private static func timestamp(_ row: any SQLRow, _ column: String) throws -> Timestamp? {
        try row.decode(column: column, as: String?.self).flatMap(Timestamp.init(iso8601:))
    }

    /// Runs `body` in a transaction; failures other than `ExamBellError` become 503.
    private func transaction<R: Sendable>(
        timeLimit: Duration? = nil, _ body: @escaping @Sendable (any SQLDatabase) async throws -> R
    ) async throws -> R {
        try await mapErrors {
            if let timeLimit { try await executor.withLongTransaction(timeLimit: timeLimit, body) } else { try await executor.withTransaction(body) }
        }
    }

    /// Runs `body` on a connection; failures other than `ExamBellError` become 503.
    private func connection<R: Sendable>(_ body: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await mapErrors { try await executor.withConnection(body) }
    }

    private func mapErrors<R>(_ body: () async throws -> R) async throws -> R {
        do {
            return try await body()
        } catch let error as ExamBellError {
            if error.status == 503 { failures.record(.database) }
            throw error
        } catch let error as CancellationError {
            throw error
        } catch {
            failures.record(.database)
            throw ExamBellError.unavailable("The database could not complete the request (\(String(describing: type(of: error)))).")
        }
    }
}

extension Array {
    /// The array cut into consecutive pieces of at most `size` elements.
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
