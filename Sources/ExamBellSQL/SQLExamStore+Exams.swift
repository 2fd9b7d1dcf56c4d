import ExamBellCore
import SQLKit

/// `ExamPlanStore`: exam plans, their start and their end (the end's conditional update and outbox row).
extension SQLExamStore {
    public func createExam(
        examId: String, title: String, items: ExamItems, scheduledEnd: Timestamp?, actor: String, at: Timestamp
    ) async throws -> ExamPlan {
        try items.validate()
        return try await transaction { db in
            if try await Self.plan(examId, db) != nil {
                throw StoreError.conflict(code: "exam_exists", message: "An exam with id \(examId) exists already.")
            }
            try await db.raw(
                """
                INSERT INTO exam_plan (plan_id, title, status, created_at, scheduled_end_datetime, choice_items, short_items)
                VALUES (\(bind: examId), \(bind: title), \(bind: ExamStatus.scheduled.rawValue), \(bind: at.iso8601),
                    \(bind: scheduledEnd?.iso8601), \(bind: items.choice), \(bind: items.short))
                """
            ).run()
            try await Self.audit(AuditEntry(examId: examId, actor: actor, action: "create", reason: nil, detail: title, at: at), db)
            return ExamPlan(
                examId: examId, title: title, status: .scheduled, createdAt: at, scheduledEndDatetime: scheduledEnd, items: items
            )
        }
    }

    public func exam(_ examId: String) async throws -> ExamPlan? {
        try await connection { db in try await Self.plan(examId, db) }
    }

    public func exams(after: String?, limit: Int) async throws -> [ExamPlan] {
        try await connection { db in
            guard let after else {
                return try await db.raw("SELECT * FROM exam_plan ORDER BY created_at DESC, plan_id LIMIT \(bind: limit)").all()
                    .map(Self.plan(from:))
            }
            // Keyset paging: the rows after `after` in (created_at DESC, plan_id) order.
            return try await db.raw(
                """
                SELECT p.* FROM exam_plan p, exam_plan a WHERE a.plan_id = \(bind: after)
                    AND (p.created_at < a.created_at OR (p.created_at = a.created_at AND p.plan_id > a.plan_id))
                ORDER BY p.created_at DESC, p.plan_id LIMIT \(bind: limit)
                """
            ).all().map(Self.plan(from:))
        }
    }

    public func completeCandidates(examId: String, at endDatetime: Timestamp) async throws {
        try await transaction { db in
            try await db.raw(
                """
                UPDATE exam_candidate SET status = \(bind: CandidateStatus.completed.rawValue),
                    last_active_time = \(bind: endDatetime.iso8601)
                WHERE plan_id = \(bind: examId) AND status <> \(bind: CandidateStatus.completed.rawValue)
                """
            ).run()
        }
    }

    public func examsToSync(endedSince: Timestamp) async throws -> [String] {
        try await connection { db in
            try await db.raw(
                """
                SELECT plan_id FROM exam_plan
                WHERE status = \(bind: ExamStatus.inProgress.rawValue)
                    OR (status = \(bind: ExamStatus.completed.rawValue) AND end_datetime >= \(bind: endedSince.iso8601))
                ORDER BY plan_id
                """
            ).all().map { try $0.decode(column: "plan_id", as: String.self) }
        }
    }

    public func examsDueToEnd(at time: Timestamp) async throws -> [String] {
        try await connection { db in
            // An exam whose running candidates include one with a later end of its own (an
            // accommodation) waits for it; the others end alone meanwhile (`candidatesDueToEnd`).
            try await db.raw(
                """
                SELECT plan_id FROM exam_plan p
                WHERE status = \(bind: ExamStatus.inProgress.rawValue) AND scheduled_end_datetime IS NOT NULL
                    AND scheduled_end_datetime <= \(bind: time.iso8601)
                    AND NOT EXISTS (
                        SELECT 1 FROM exam_candidate c
                        WHERE c.plan_id = p.plan_id AND c.status = \(bind: CandidateStatus.inProgress.rawValue)
                            AND c.scheduled_end_datetime > \(bind: time.iso8601)
                    )
                ORDER BY scheduled_end_datetime, plan_id
                """
            ).all().map { try $0.decode(column: "plan_id", as: String.self) }
        }
    }

    public func startExam(examId: String, actor: String, at: Timestamp) async throws -> ExamPlan {
        try await transaction { db in
            let started = try await db.raw(
                """
                UPDATE exam_plan SET status = \(bind: ExamStatus.inProgress.rawValue), start_datetime = \(bind: at.iso8601)
                WHERE plan_id = \(bind: examId) AND status = \(bind: ExamStatus.scheduled.rawValue)
                RETURNING plan_id
                """
            ).first()
            guard started != nil else {
                let plan = try await Self.existingPlan(examId, db)
                throw StoreError.wrongState(examId, is: plan.status, action: "start")
            }
            try await db.raw(
                """
                UPDATE exam_candidate SET status = \(bind: CandidateStatus.inProgress.rawValue)
                WHERE plan_id = \(bind: examId) AND status = \(bind: CandidateStatus.registered.rawValue)
                """
            ).run()
            try await Self.audit(AuditEntry(examId: examId, actor: actor, action: "start", reason: nil, detail: nil, at: at), db)
            let plan = try await Self.existingPlan(examId, db)
            return plan
        }
    }

    public func endExam(
        examId: String, at endDatetime: Timestamp, actor: String, reason: String?, leaseUntil: Timestamp
    ) async throws -> EndTransition {
        try await transaction { db in
            let ended = try await db.raw(
                """
                UPDATE exam_plan SET status = \(bind: ExamStatus.completed.rawValue),
                    end_datetime = \(bind: endDatetime.iso8601), ended_by = \(bind: actor), end_reason = \(bind: reason)
                WHERE plan_id = \(bind: examId) AND status = \(bind: ExamStatus.inProgress.rawValue)
                RETURNING plan_id
                """
            ).first()
            guard ended != nil else {
                let plan = try await Self.existingPlan(examId, db)
                guard plan.status == .completed else { throw StoreError.wrongState(examId, is: plan.status, action: "end") }
                return .alreadyCompleted(plan)
            }
            let outbox = try await Self.insertOutbox(
                .examEnd(ExamEndQueueMessage(examId: examId, timestamp: endDatetime)), examId: examId, at: endDatetime,
                leaseUntil: leaseUntil, db
            )
            try await Self.audit(
                AuditEntry(examId: examId, actor: actor, action: "end", reason: reason, detail: nil, at: endDatetime), db
            )
            try await Self.insertWebhookEvent(
                .examEnded(examId: examId, endDatetime: endDatetime, reason: reason, actor: actor), nowMs: Timestamp.milliseconds(), db
            )
            let plan = try await Self.existingPlan(examId, db)
            return .ended(plan, outbox: outbox)
        }
    }
}
