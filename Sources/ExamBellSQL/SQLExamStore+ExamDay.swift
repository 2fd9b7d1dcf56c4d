import ExamBellCore
import Foundation
import SQLKit

/// `ExamDayStore`: planned ends moved, candidates ended alone, announcements, lock receipts.
///
/// A change that concerns a running exam first takes the plan's row with a conditional
/// update (a row lock on PostgreSQL; SQLite serialises writers anyway), so it cannot cross
/// the exam's end: it sees the exam either running or ended.
extension SQLExamStore {
    public func timeChangeFacts(examId: String, candidateIds: [String]?) async throws -> TimeChangeFacts {
        try await connection { db in
            let plan = try await Self.existingPlan(examId, db)
            let running = try await db.raw(
                """
                SELECT * FROM exam_candidate WHERE plan_id = \(bind: examId) AND status = \(bind: CandidateStatus.inProgress.rawValue)
                """
            ).all().map(Self.candidate(from:))
            var listed: [String: Candidate] = [:]
            if let candidateIds { listed = try await Self.candidateRows(examId: examId, ids: candidateIds, db) }
            return TimeChangeFacts(plan: plan, running: running, listed: listed)
        }
    }

    public func applyTimeChange(
        examId: String, _ plan: TimeChangePlan, from facts: TimeChangeFacts, actor: String, reason: String, at: Timestamp,
        leaseUntil: Timestamp
    ) async throws -> OutboxEntry {
        try await transaction { db in
            // The exam's row, taken only while the exam runs, with the planned end planned from.
            let current = try await Self.runningPlan(examId, action: "change its time", db)
            let changed = StoreError.conflict(
                code: "time_changed", message: "Exam \(examId) changed while its time change was planned; send the change again.")
            guard current.scheduledEndDatetime == facts.plan.scheduledEndDatetime else { throw changed }
            if plan.everyone {
                try await db.raw(
                    "UPDATE exam_plan SET scheduled_end_datetime = \(bind: plan.scheduledEndDatetime.iso8601) WHERE plan_id = \(bind: examId)"
                ).run()
            }
            // The candidates' own ends, only while each still runs: one conditional update a chunk.
            let own = plan.own.sorted { $0.key < $1.key }
            var written = 0
            for chunk in own.chunked(Self.chunkSize) {
                var cases: SQLQueryString = "CASE candidate_id"
                for (id, time) in chunk { cases += " WHEN \(bind: id) THEN \(bind: time.iso8601)" }
                cases += " END"
                written += try await db.raw(
                    """
                    UPDATE exam_candidate SET scheduled_end_datetime = \(cases)
                    WHERE plan_id = \(bind: examId) AND status = \(bind: CandidateStatus.inProgress.rawValue)
                        AND candidate_id IN (\(binds: chunk.map(\.key)))
                    RETURNING candidate_id
                    """
                ).all().count
            }
            guard written == own.count else { throw changed }
            let outbox = try await Self.insertOutbox(
                .event(.time(plan.event(examId: examId))), examId: examId, at: at, leaseUntil: leaseUntil, db)
            let detail =
                plan.everyone
                ? "everyone: planned end \(facts.plan.scheduledEndDatetime?.iso8601 ?? "none") → \(plan.scheduledEndDatetime.iso8601)"
                : plan.listed.sorted { $0.key < $1.key }.map { "\($0.key) → \($0.value.iso8601)" }.joined(separator: ", ")
            try await Self.audit(AuditEntry(examId: examId, actor: actor, action: "change_time", reason: reason, detail: detail, at: at), db)
            try await db.raw(
                """
                INSERT INTO exam_time_change (plan_id, actor, reason, at, everyone, scheduled_end_datetime, ends)
                VALUES (\(bind: examId), \(bind: actor), \(bind: reason), \(bind: at.iso8601), \(bind: plan.everyone ? 1 : 0),
                    \(bind: plan.scheduledEndDatetime.iso8601), \(bind: JSONText.object(pairs: own.map { ($0.key, JSONText.string($0.value.iso8601)) })))
                """
            ).run()
            try await Self.insertWebhookEvent(
                .timeChanged(
                    examId: examId, scheduledEndDatetime: plan.scheduledEndDatetime,
                    candidateIds: plan.everyone ? nil : plan.listed.keys.sorted(), reason: reason, actor: actor, at: at
                ), nowMs: Timestamp.milliseconds(), db
            )
            return outbox
        }
    }

    public func endCandidates(
        examId: String, candidateIds: [String], at: Timestamp, actor: String, reason: String?, endedBy: CandidateEndCause,
        leaseUntil: Timestamp
    ) async throws -> CandidateEndResult {
        try await transaction { db in
            let plan = try await Self.existingPlan(examId, db)
            let all = try await Self.candidateRows(examId: examId, ids: candidateIds, db)
            for id in candidateIds where all[id] == nil {
                throw StoreError.notFound(code: "candidate_not_found", message: "\(id) is not a candidate of exam \(examId).")
            }
            switch plan.status {
            case .scheduled:
                throw StoreError.wrongState(examId, is: plan.status, action: "end a candidate")
            case .completed:
                return CandidateEndResult(
                    ended: [], alreadyCompleted: all.compactMapValues { $0.endTime(in: plan) ?? plan.endDatetime }, outbox: nil
                )
            case .inProgress:
                break
            }
            // Take the plan's row, shared: an exam end or a time change running at the same
            // time waits, or has won; ends of other candidates go on alongside, and ends of
            // the same candidate meet at its row below.
            guard try await Self.lockRunningPlan(examId, shared: true, db) else {
                let now = try await Self.existingPlan(examId, db)
                return CandidateEndResult(ended: [], alreadyCompleted: all.compactMapValues { $0.endTime(in: now) }, outbox: nil)
            }
            var ended: [String] = []
            // In id order: two ends of overlapping candidates at once take their rows in the
            // same order, so one waits for the other instead of both deadlocking.
            let sorted = candidateIds.sorted()
            try await Self.lockCandidateRows(examId: examId, sortedIds: sorted, db)
            for chunk in sorted.chunked(Self.chunkSize) {
                ended += try await db.raw(
                    """
                    UPDATE exam_candidate SET status = \(bind: CandidateStatus.completed.rawValue), last_active_time = \(bind: at.iso8601),
                        ended_by = \(bind: endedBy.rawValue)
                    WHERE plan_id = \(bind: examId) AND candidate_id IN (\(binds: Array(chunk)))
                        AND status <> \(bind: CandidateStatus.completed.rawValue)
                    RETURNING candidate_id
                    """
                ).all().map { try $0.decode(column: "candidate_id", as: String.self) }
            }
            ended.sort()
            let endedSet = Set(ended)
            // Read again: a concurrent end that won the row lock committed its own time.
            let others = candidateIds.filter { !endedSet.contains($0) }
            let now = try await Self.candidateRows(examId: examId, ids: others, db)
            let before = now.compactMapValues { $0.lastActiveTime ?? at }
            guard !ended.isEmpty else { return CandidateEndResult(ended: [], alreadyCompleted: before, outbox: nil) }
            let outbox = try await Self.insertOutbox(
                .event(.candidateEnd(CandidateEndEvent(examId: examId, candidateIds: ended, timestamp: at))), examId: examId, at: at,
                leaseUntil: leaseUntil, db
            )
            try await Self.audit(
                ended.map { AuditEntry(examId: examId, actor: actor, action: "end_candidate", reason: reason, detail: $0, at: at) }, db)
            let nowMs = Timestamp.milliseconds()
            for id in ended {
                try await Self.insertWebhookEvent(
                    .candidateEnded(examId: examId, candidateId: id, endDatetime: at, endedBy: endedBy), nowMs: nowMs, db
                )
            }
            return CandidateEndResult(ended: ended, alreadyCompleted: before, outbox: outbox)
        }
    }

    /// An exam due to end itself (`examsDueToEnd`) is left out: its end tells everyone at once.
    public func candidatesDueToEnd(at time: Timestamp) async throws -> [String: [String]] {
        try await connection { db in
            // Plans first (CROSS JOIN keeps SQLite's loop order; PostgreSQL plans it freely):
            // the scheduler asks every second, and a plain join had SQLite scan every candidate
            // row of every exam ever held, so an idle node's CPU grew with its history.
            let rows = try await db.raw(
                """
                SELECT c.plan_id, c.candidate_id FROM exam_plan p CROSS JOIN exam_candidate c
                WHERE c.plan_id = p.plan_id AND p.status = \(bind: ExamStatus.inProgress.rawValue) AND c.status = \(bind: CandidateStatus.inProgress.rawValue)
                    AND COALESCE(c.scheduled_end_datetime, p.scheduled_end_datetime) <= \(bind: time.iso8601)
                    AND NOT (
                        p.scheduled_end_datetime <= \(bind: time.iso8601)
                        AND NOT EXISTS (
                            SELECT 1 FROM exam_candidate later
                            WHERE later.plan_id = p.plan_id AND later.status = \(bind: CandidateStatus.inProgress.rawValue)
                                AND later.scheduled_end_datetime > \(bind: time.iso8601)
                        )
                    )
                ORDER BY c.plan_id, c.candidate_id
                """
            ).all()
            var due: [String: [String]] = [:]
            for row in rows {
                due[try row.decode(column: "plan_id", as: String.self), default: []].append(
                    try row.decode(column: "candidate_id", as: String.self)
                )
            }
            return due
        }
    }

    public func announce(
        examId: String, message: String, candidateIds: [String]?, actor: String, at: Timestamp, leaseUntil: Timestamp
    ) async throws -> (AnnouncementEvent, OutboxEntry) {
        try await transaction { db in
            _ = try await Self.runningPlan(examId, action: "take announcements", db)
            if let candidateIds {
                let all = try await Self.candidateRows(examId: examId, ids: candidateIds, db)
                for id in candidateIds where all[id] == nil {
                    throw StoreError.notFound(code: "candidate_not_found", message: "\(id) is not a candidate of exam \(examId).")
                }
            }
            let row = try await db.raw(
                """
                INSERT INTO exam_announcement (plan_id, message, candidate_ids, actor, created_at)
                VALUES (\(bind: examId), \(bind: message), \(bind: candidateIds.map(JSONText.array)), \(bind: actor), \(bind: at.iso8601))
                RETURNING id
                """
            ).first()
            guard let id = try row?.decode(column: "id", as: Int64.self) else {
                throw StoreError.unavailable("The database did not return the announcement row.")
            }
            let event = AnnouncementEvent(
                examId: examId, announcementId: "a\(id)", message: message, timestamp: at, candidateIds: candidateIds
            )
            let outbox = try await Self.insertOutbox(.event(.announcement(event)), examId: examId, at: at, leaseUntil: leaseUntil, db)
            try await Self.audit(
                AuditEntry(
                    examId: examId, actor: actor, action: "announce", reason: nil,
                    detail: "\(event.announcementId) to \(candidateIds.map { "\($0.count) candidate(s)" } ?? "everyone"): \(message)", at: at
                ), db
            )
            return (event, outbox)
        }
    }

    public func announcements(examId: String, for candidateId: String?) async throws -> [AnnouncementEvent] {
        try await connection { db in
            try await db.raw("SELECT * FROM exam_announcement WHERE plan_id = \(bind: examId) ORDER BY id").all().map { row in
                let ids = try row.decode(column: "candidate_ids", as: String?.self).flatMap {
                    try? JSONDecoder().decode([String].self, from: Data($0.utf8))
                }
                return AnnouncementEvent(
                    examId: examId, announcementId: "a\(try row.decode(column: "id", as: Int64.self))",
                    message: try row.decode(column: "message", as: String.self),
                    timestamp: try Self.timestamp(row, "created_at") ?? Timestamp(secondsSince1970: 0), candidateIds: ids
                )
            }.filter { event in candidateId.map(event.concerns) ?? true }
        }
    }

    public func recordLocks(_ times: [String: Timestamp]) async throws -> Int {
        try await recordFirstTimes(column: "locked_at", times)
    }

    public func recordClockOffsets(_ offsets: [String: Int]) async throws -> Int {
        guard !offsets.isEmpty else { return 0 }
        return try await transaction { db in
            var changed = 0
            for (candidateId, ms) in offsets.sorted(by: { $0.key < $1.key }) {
                let rows = try await db.raw(
                    """
                    UPDATE exam_candidate SET clock_offset_ms = \(bind: ms)
                    WHERE candidate_id = \(bind: candidateId) AND clock_offset_ms IS NULL RETURNING candidate_id
                    """
                ).all()
                changed += rows.count
            }
            return changed
        }
    }

    // MARK: Helpers

    /// The plan, which must be running (404 / 409 otherwise).
    /// The row is taken first and read after, so two changes at once see each other's result.
    static func runningPlan(_ examId: String, action: String, _ db: any SQLDatabase) async throws -> ExamPlan {
        guard try await lockRunningPlan(examId, db) else {
            throw StoreError.wrongState(examId, is: try await existingPlan(examId, db).status, action: action)
        }
        return try await existingPlan(examId, db)
    }

    /// Takes the plan's row for this transaction if it is still running; false once it ended.
    /// `shared`: other shared takers hold it at the same time, and a taker of the whole row
    /// (the exam's end, a time change) waits for them all (PostgreSQL's `FOR SHARE`, which
    /// writes nothing; SQLite's write transactions exclude each other anyway).
    static func lockRunningPlan(_ examId: String, shared: Bool = false, _ db: any SQLDatabase) async throws -> Bool {
        if shared, db.dialect.name == "postgresql" {
            return try await db.raw(
                """
                SELECT plan_id FROM exam_plan
                WHERE plan_id = \(bind: examId) AND status = \(bind: ExamStatus.inProgress.rawValue)
                FOR SHARE
                """
            ).first() != nil
        }
        return try await db.raw(
            """
            UPDATE exam_plan SET status = status
            WHERE plan_id = \(bind: examId) AND status = \(bind: ExamStatus.inProgress.rawValue)
            RETURNING plan_id
            """
        ).first() != nil
    }

    /// On PostgreSQL, takes the rows of these candidates for update in id order (byte order,
    /// as `sortedIds` is), chunk after chunk, before they are updated: an `UPDATE … IN (…)`
    /// takes its rows in its scan's order, so two overlapping ends could otherwise take them in
    /// opposite orders and deadlock. Only rows still to end are taken: a row another end
    /// completed meanwhile is left (PostgreSQL checks the condition again after the wait), so
    /// the losers of one candidate's concurrent ends do not queue behind each other.
    /// SQLite runs one write transaction at a time.
    static func lockCandidateRows(examId: String, sortedIds: [String], _ db: any SQLDatabase) async throws {
        guard db.dialect.name == "postgresql" else { return }
        for chunk in sortedIds.chunked(chunkSize) {
            _ = try await db.raw(
                """
                SELECT candidate_id FROM exam_candidate
                WHERE plan_id = \(bind: examId) AND candidate_id IN (\(binds: Array(chunk)))
                    AND status <> \(bind: CandidateStatus.completed.rawValue)
                ORDER BY candidate_id COLLATE "C"
                FOR UPDATE
                """
            ).all()
        }
    }

    /// The candidates of the exam among `ids`, by id.
    static func candidateRows(examId: String, ids: [String], _ db: any SQLDatabase) async throws -> [String: Candidate] {
        var result: [String: Candidate] = [:]
        for chunk in ids.chunked(chunkSize) {
            for row in try await db.raw(
                "SELECT * FROM exam_candidate WHERE plan_id = \(bind: examId) AND candidate_id IN (\(binds: Array(chunk)))"
            ).all() {
                let candidate = try candidate(from: row)
                result[candidate.candidateId] = candidate
            }
        }
        return result
    }
}
