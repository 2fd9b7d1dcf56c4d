import ExamBellCore
import SQLKit

/// `PeopleStore`: candidates and proctors, and what final sync copies back to them.
extension SQLExamStore {
    public func registerCandidates(examId: String, _ people: [Registrant], actor: String, at: Timestamp) async throws
        -> RegistrationResult
    {
        try await register(.candidates, examId: examId, people, actor: actor, at: at)
    }

    public func registerProctors(examId: String, _ people: [Registrant], actor: String, at: Timestamp) async throws
        -> RegistrationResult
    {
        try await register(.proctors, examId: examId, people, actor: actor, at: at)
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

    private func register(_ kind: PeopleTable, examId: String, _ people: [Registrant], actor: String, at: Timestamp)
        async throws -> RegistrationResult
    {
        try await transaction(timeLimit: .seconds(60)) { db in
            let plan = try await Self.existingPlan(examId, db)
            guard plan.status != .completed else {
                throw StoreError.wrongState(examId, is: plan.status, action: "take new \(kind.noun)s")
            }
            var existing: [String: (examId: String, name: String)] = [:]
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
            let taken = existing.filter { $0.value.examId != examId }.keys.sorted()
            if !taken.isEmpty {
                throw StoreError.conflict(
                    code: "\(kind.noun)_in_other_exam",
                    message: "\(taken.count) \(kind.noun) id(s) belong to another exam, e.g. \(taken.prefix(5).joined(separator: ", "))."
                )
            }
            let fresh = people.filter { existing[$0.id] == nil }
            let status = CandidateStatus.following(plan.status).rawValue
            for chunk in fresh.chunked(Self.chunkSize) {
                let rows: [SQLQueryString] = chunk.map { person in
                    kind.hasStatus
                        ? "(\(bind: person.id), \(bind: examId), \(bind: person.name), \(bind: status))"
                        : "(\(bind: person.id), \(bind: examId), \(bind: person.name))"
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
                    examId: examId, actor: actor, action: "register_\(kind.noun)s", reason: nil,
                    detail: "added \(result.added), already registered \(result.existing)", at: at
                ), db
            )
            return result
        }
    }

    public func candidates(examId: String) async throws -> [Candidate] {
        try await connection { db in
            try await db.raw("SELECT * FROM exam_candidate WHERE plan_id = \(bind: examId) ORDER BY candidate_id").all()
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

    public func proctors(examId: String) async throws -> [Proctor] {
        try await connection { db in
            try await db.raw("SELECT * FROM exam_proctor WHERE plan_id = \(bind: examId) ORDER BY proctor_id").all().map {
                Proctor(
                    proctorId: try $0.decode(column: "proctor_id", as: String.self),
                    examId: try $0.decode(column: "plan_id", as: String.self),
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
                    updated =
                        try await db.raw(
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
                    let moved =
                        try await db.raw(
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
        try await recordFirstTimes(column: "acknowledged_at", times)
    }

    /// Sets a receipt column of candidates (`acknowledged_at`, `locked_at`) where it is still
    /// empty: the first time recorded stays. Returns rows changed.
    func recordFirstTimes(column: String, _ times: [String: Timestamp]) async throws -> Int {
        guard !times.isEmpty else { return 0 }
        return try await transaction { db in
            var changed = 0
            for (id, time) in times.sorted(by: { $0.key < $1.key }) {
                let updated = try await db.raw(
                    """
                    UPDATE exam_candidate SET \(ident: column) = \(bind: time.iso8601)
                    WHERE candidate_id = \(bind: id) AND \(ident: column) IS NULL
                    RETURNING candidate_id
                    """
                ).first()
                if updated != nil { changed += 1 }
            }
            return changed
        }
    }

    public func candidateCounts(examId: String) async throws -> [CandidateStatus: Int] {
        try await connection { db in
            var counts: [CandidateStatus: Int] = [:]
            let rows = try await db.raw(
                "SELECT status, COUNT(*) AS n FROM exam_candidate WHERE plan_id = \(bind: examId) GROUP BY status"
            ).all()
            for row in rows {
                if let status = CandidateStatus(rawValue: try row.decode(column: "status", as: String.self)) {
                    counts[status] = try row.decode(column: "n", as: Int.self)
                }
            }
            return counts
        }
    }

    public func candidateIds(examId: String) async throws -> [String] {
        try await connection { db in
            try await db.raw(
                """
                SELECT c.candidate_id FROM exam_candidate c JOIN exam_plan p ON p.plan_id = c.plan_id
                WHERE c.plan_id = \(bind: examId) AND NOT (
                    c.status = \(bind: CandidateStatus.completed.rawValue)
                    AND c.last_active_time < COALESCE(p.end_datetime, '9999-12-31T23:59:59Z')
                )
                ORDER BY c.candidate_id
                """
            ).all()
                .map { try $0.decode(column: "candidate_id", as: String.self) }
        }
    }
}
