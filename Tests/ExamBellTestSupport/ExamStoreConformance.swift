import ExamBellCore
import Testing

/// The behaviour every `ExamStore` backend must have. Each backend's test target runs every
/// case against a fresh store of its kind (SQLite now, PostgreSQL too).
public enum ExamStoreConformance {
    /// One named check, so each shows as its own test result.
    public struct Case: Sendable, CustomTestStringConvertible {
        public let name: String
        public let run: @Sendable (any ExamStore) async throws -> Void
        public var testDescription: String { name }
    }

    static let t0 = Timestamp(iso8601: "2024-01-16T09:00:00Z")!
    static let end = Timestamp(iso8601: "2024-01-16T18:00:00Z")!

    /// Creates `e1` with candidates c1…cN and starts it.
    static func startedExam(_ store: any ExamStore, id: String = "e1", candidates: Int = 3) async throws {
        _ = try await store.createExam(examId: id, title: "Exam \(id)", actor: "admin", at: t0)
        _ = try await store.registerCandidates(
            examId: id, (1...max(1, candidates)).map { Registrant(id: "\(id)-c\($0)", name: "Candidate \($0)") },
            actor: "admin", at: t0
        )
        _ = try await store.startExam(examId: id, actor: "admin", at: t0)
    }

    /// Every case: the plan, people, answers and outbox here; the exam day and operators in
    /// their own files.
    public static var cases: [Case] { planCases + examDayCases + operatorCases }

    static let planCases: [Case] = [
        Case(name: "exams to sync: running ones and those ended within the window, not scheduled or older ends") { store in
            for id in ["old", "recent", "running"] { try await startedExam(store, id: id, candidates: 1) }
            _ = try await store.createExam(examId: "later", title: "Not started", actor: "admin", at: t0)
            _ = try await store.endExam(examId: "old", at: end, actor: "admin", reason: nil, leaseUntil: end)
            _ = try await store.endExam(examId: "recent", at: end.adding(seconds: 3600), actor: "admin", reason: nil, leaseUntil: end)
            #expect(try await store.examsToSync(endedSince: end.adding(seconds: 1)) == ["recent", "running"])
            #expect(try await store.examsToSync(endedSince: end) == ["old", "recent", "running"], "an end at the window's edge is in")
            #expect(try await store.examsToSync(endedSince: end.adding(seconds: 3601)) == ["running"])
        },
        Case(name: "state archive: ended exams to retire oldest first, kept hashes read back, a retired exam not listed again") { store in
            for id in ["old", "older", "recent", "running"] { try await startedExam(store, id: id, candidates: 1) }
            _ = try await store.endExam(examId: "old", at: end, actor: "admin", reason: nil, leaseUntil: end)
            _ = try await store.endExam(examId: "older", at: end.adding(seconds: -60), actor: "admin", reason: nil, leaseUntil: end)
            _ = try await store.endExam(examId: "recent", at: end.adding(seconds: 3600), actor: "admin", reason: nil, leaseUntil: end)
            #expect(try await store.examsToRetire(endedBefore: end.adding(seconds: 1), limit: 10) == ["older", "old"])
            #expect(try await store.examsToRetire(endedBefore: end.adding(seconds: 1), limit: 1) == ["older"])
            #expect(try await store.examsToRetire(endedBefore: end, limit: 10) == ["older"], "an end at the cutoff is not closed yet")
            // More rows than one statement takes, and a field written again.
            let many = Dictionary(uniqueKeysWithValues: (0..<450).map { ("c\($0)", "v\($0)") })
            try await store.archiveState(examId: "old", hashes: ["exam_time_ack:old": many, "exam_connections:old": ["c1|n|1": "1,2"]])
            try await store.archiveState(examId: "old", hashes: ["exam_connections:old": ["c1|n|1": "1,3"]])
            #expect(try await store.archivedFields("exam_time_ack:old") == many)
            #expect(try await store.archivedFields("exam_connections:old") == ["c1|n|1": "1,3"])
            #expect(try await store.archivedFields("exam_time_ack:recent").isEmpty)
            try await store.markStateRetired(examId: "old", at: end.adding(seconds: 7200))
            #expect(try await store.examsToRetire(endedBefore: end.adding(seconds: 1), limit: 10) == ["older"])
            try await store.archiveState(examId: "older", hashes: [:])
            #expect(try await store.archivedFields("exam_time_ack:old").count == 450, "an empty archive changes nothing")
        },
        Case(name: "create, read and list exams") { store in
            let plan = try await store.createExam(examId: "e1", title: "수학", actor: "admin", at: t0)
            #expect(plan.status == .scheduled)
            #expect(try await store.exam("e1") == plan)
            #expect(try await store.exam("nope") == nil)
            _ = try await store.createExam(examId: "e2", title: "영어", actor: "admin", at: t0.adding(seconds: 1))
            #expect(try await store.exams().map(\.examId) == ["e2", "e1"])
            await #expect(throws: StoreError.self) {
                _ = try await store.createExam(examId: "e1", title: "again", actor: "admin", at: t0)
            }
        },
        Case(name: "registration is all or nothing and keeps ids unique across exams") { store in
            _ = try await store.createExam(examId: "e1", title: "A", actor: "admin", at: t0)
            _ = try await store.createExam(examId: "e2", title: "B", actor: "admin", at: t0)
            let first = try await store.registerCandidates(
                examId: "e1", [Registrant(id: "c1", name: "One"), Registrant(id: "c2", name: "Two")], actor: "admin", at: t0
            )
            #expect(first == RegistrationResult(added: 2, existing: 0))
            let again = try await store.registerCandidates(
                examId: "e1", [Registrant(id: "c2", name: "Two renamed"), Registrant(id: "c3", name: "Three")],
                actor: "admin", at: t0
            )
            #expect(again == RegistrationResult(added: 1, existing: 1))
            #expect(try await store.candidates(examId: "e1").map(\.name) == ["One", "Two renamed", "Three"])
            let error = await #expect(throws: StoreError.self) {
                _ = try await store.registerCandidates(
                    examId: "e2", [Registrant(id: "c9", name: "New"), Registrant(id: "c1", name: "Taken")], actor: "admin", at: t0
                )
            }
            #expect(error.map { ExamBellError($0).status } == 409)
            #expect(try await store.candidates(examId: "e2").isEmpty, "nothing of a refused batch is applied")
            await #expect(throws: StoreError.examNotFound("nope")) {
                _ = try await store.registerCandidates(examId: "nope", [Registrant(id: "x", name: "X")], actor: "admin", at: t0)
            }
        },
        Case(name: "bulk registration of 10,000 candidates") { store in
            _ = try await store.createExam(examId: "big", title: "Big", actor: "admin", at: t0)
            let people = (0..<10_000).map { Registrant(id: "b\($0)", name: "Candidate \($0)") }
            #expect(try await store.registerCandidates(examId: "big", people, actor: "admin", at: t0).added == 10_000)
            #expect(try await store.candidateCounts(examId: "big") == [.registered: 10_000])
            #expect(try await store.candidates(ids: ["b0", "b9999", "zzz"]).count == 2)
        },
        Case(name: "start moves scheduled to in_progress, once") { store in
            _ = try await store.createExam(examId: "e1", title: "A", actor: "admin", at: t0)
            _ = try await store.registerCandidates(examId: "e1", [Registrant(id: "c1", name: "One")], actor: "admin", at: t0)
            let started = try await store.startExam(examId: "e1", actor: "admin", at: t0)
            #expect(started.status == .inProgress)
            #expect(started.startDatetime == t0)
            #expect(try await store.candidateCounts(examId: "e1") == [.inProgress: 1])
            let error = await #expect(throws: StoreError.self) { _ = try await store.startExam(examId: "e1", actor: "admin", at: t0) }
            #expect(error.map { ExamBellError($0).status } == 409)
            await #expect(throws: StoreError.examNotFound("nope")) { _ = try await store.startExam(examId: "nope", actor: "a", at: t0) }
        },
        Case(name: "end completes exam and candidates with one end time, one outbox row, one audit row") { store in
            try await startedExam(store)
            let transition = try await store.endExam(
                examId: "e1", at: end, actor: "admin", reason: "time is up", leaseUntil: end.adding(seconds: 5)
            )
            guard case .ended(let plan, let outbox) = transition else {
                Issue.record("expected .ended, got \(transition)")
                return
            }
            #expect(plan.status == .completed)
            #expect(plan.endDatetime == end)
            #expect(plan.endedBy == "admin")
            #expect(plan.endReason == "time is up")
            #expect(outbox.message == ExamEndQueueMessage(examId: "e1", timestamp: end))
            #expect(try await store.candidateCounts(examId: "e1") == [.inProgress: 3], "the candidates follow after the publish")
            try await store.completeCandidates(examId: "e1", at: end)
            try await store.completeCandidates(examId: "e1", at: end.adding(seconds: 9))
            #expect(try await store.candidateCounts(examId: "e1") == [.completed: 3])
            #expect(try await store.candidates(examId: "e1").allSatisfy { $0.lastActiveTime == end })
            #expect(try await store.candidateIds(examId: "e1") == ["e1-c1", "e1-c2", "e1-c3"])
            #expect(try await store.candidateIds(examId: "no-such-exam") == [], "no row at all is no id")
            #expect(try await store.outboxBacklog() == 1)
            let ends = try await store.auditLog(examId: "e1").filter { $0.action == "end" }
            #expect(ends.count == 1)
            #expect(ends.first?.reason == "time is up")
            #expect(ends.first?.at == end)
        },
        Case(name: "ending again answers alreadyCompleted with the first end time and changes nothing") { store in
            try await startedExam(store)
            _ = try await store.endExam(examId: "e1", at: end, actor: "admin", reason: nil, leaseUntil: end)
            let again = try await store.endExam(examId: "e1", at: end.adding(seconds: 60), actor: "admin", reason: nil, leaseUntil: end)
            guard case .alreadyCompleted(let plan) = again else {
                Issue.record("expected .alreadyCompleted, got \(again)")
                return
            }
            #expect(plan.endDatetime == end)
            #expect(try await store.outboxBacklog() == 1)
            #expect(try await store.auditLog(examId: "e1").filter { $0.action == "end" }.count == 1)
        },
        Case(name: "end refuses unknown and scheduled exams") { store in
            _ = try await store.createExam(examId: "s1", title: "S", actor: "admin", at: t0)
            let error = await #expect(throws: StoreError.self) {
                _ = try await store.endExam(examId: "s1", at: end, actor: "admin", reason: nil, leaseUntil: end)
            }
            #expect(error.map { ExamBellError($0).status } == 409)
            await #expect(throws: StoreError.examNotFound("nope")) {
                _ = try await store.endExam(examId: "nope", at: end, actor: "admin", reason: nil, leaseUntil: end)
            }
            #expect(try await store.outboxBacklog() == 0)
        },
        Case(name: "concurrent ends make exactly one transition") { store in
            try await startedExam(store)
            // A loser either sees the winner's end or, on a loaded machine, is refused when its
            // wait for the row passes the lock bound (503, nothing changed); never a second end.
            let outcomes = try await withThrowingTaskGroup(of: EndTransition?.self) { group in
                for i in 0..<20 {
                    group.addTask {
                        do {
                            return try await store.endExam(
                                examId: "e1", at: end.adding(seconds: Int64(i)), actor: "admin", reason: nil, leaseUntil: end
                            )
                        } catch let error as StoreError where error.isUnavailable {
                            return nil
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let results = outcomes.compactMap { $0 }
            let winners = results.compactMap { result -> Timestamp? in
                if case .ended(let plan, _) = result { return plan.endDatetime }
                return nil
            }
            #expect(winners.count == 1)
            for case .alreadyCompleted(let plan) in results {
                #expect(plan.endDatetime == winners.first)
            }
            #expect(try await store.outboxBacklog() == 1)
        },
        Case(name: "outbox rows are leased, claimed once, and published") { store in
            try await startedExam(store)
            _ = try await store.endExam(examId: "e1", at: end, actor: "admin", reason: nil, leaseUntil: end.adding(seconds: 5))
            #expect(
                try await store.claimOutbox(now: end.adding(seconds: 1), leaseUntil: end.adding(seconds: 10), limit: 10).isEmpty,
                "a leased row is not taken")
            let claimed = try await store.claimOutbox(now: end.adding(seconds: 6), leaseUntil: end.adding(seconds: 20), limit: 10)
            #expect(claimed.map(\.examId) == ["e1"])
            #expect(
                try await store.claimOutbox(now: end.adding(seconds: 7), leaseUntil: end.adding(seconds: 30), limit: 10).isEmpty,
                "a claimed row is not taken twice")
            #expect(try await store.publishedOutbox(since: end).isEmpty, "not published yet")
            try await store.markPublished(outboxId: claimed[0].id, at: end.adding(seconds: 8))
            #expect(try await store.outboxBacklog() == 0)
            // What a failover's check looks at: rows published since a time, with their payload.
            #expect(try await store.publishedOutbox(since: end.adding(seconds: 8)).map(\.payload) == [claimed[0].payload])
            #expect(try await store.publishedOutbox(since: end.adding(seconds: 9)).isEmpty)
            #expect(try await store.claimOutbox(now: end.adding(seconds: 60), leaseUntil: end.adding(seconds: 90), limit: 10).isEmpty)
        },
        Case(name: "activity from the state store moves time and status only forward") { store in
            try await startedExam(store)
            let later = end.adding(seconds: 30)
            let changed = try await store.applyCandidateActivity([
                "e1-c1": CandidateStateValue(status: .completed, lastActiveTime: later),
                "e1-c2": CandidateStateValue(status: .registered, lastActiveTime: nil),
                "unknown": CandidateStateValue(status: .completed, lastActiveTime: later),
            ])
            #expect(changed == 1)
            let byId = Dictionary(uniqueKeysWithValues: try await store.candidates(examId: "e1").map { ($0.candidateId, $0) })
            #expect(byId["e1-c1"]?.status == .completed)
            #expect(byId["e1-c1"]?.lastActiveTime == later)
            #expect(byId["e1-c2"]?.status == .inProgress, "a status never moves back")
            let older = try await store.applyCandidateActivity(["e1-c1": CandidateStateValue(status: .completed, lastActiveTime: end)])
            #expect(older == 0)
        },
        Case(name: "an exam keeps its answer sheet and planned end") { store in
            let items = ExamItems(choice: 18, short: 2)
            let plan = try await store.createExam(
                examId: "e1", title: "국어", items: items, scheduledEnd: end, actor: "admin", at: t0
            )
            #expect(plan.items == items && plan.scheduledEndDatetime == end)
            let read = try await store.exam("e1")
            #expect(read?.items == items)
            #expect(read?.scheduledEndDatetime == end)
            #expect(try await store.createExam(examId: "e2", title: "기본", actor: "admin", at: t0).items == .standard)
            await #expect(throws: ExamBellError.self) {
                _ = try await store.createExam(
                    examId: "e3", title: "none", items: ExamItems(choice: 0, short: 0), scheduledEnd: nil, actor: "admin", at: t0
                )
            }
            #expect(try await store.exam("e3") == nil)
        },
        Case(name: "answers are taken while the exam runs, within the grace window after, and refused later") { store in
            _ = try await store.createExam(examId: "e1", title: "A", actor: "admin", at: t0)
            _ = try await store.registerCandidates(examId: "e1", [Registrant(id: "e1-c1", name: "One")], actor: "admin", at: t0)
            let early = await #expect(throws: ExamBellError.self) {
                _ = try await store.saveAnswers(candidateId: "e1-c1", examId: "e1", [1: "2"], at: t0, window: AnswerWindow(graceSeconds: 10))
            }
            #expect(early?.code == "exam_not_started")
            _ = try await store.startExam(examId: "e1", actor: "admin", at: t0)
            let running = t0.adding(seconds: 60)
            #expect(
                try await store.saveAnswers(
                    candidateId: "e1-c1", examId: "e1", [1: "2", 2: "서울"], at: running, window: AnswerWindow(graceSeconds: 10))
                    == .saved(at: running))
            #expect(try await store.candidates(ids: ["e1-c1"]).first?.lastActiveTime == running)
            #expect(
                try await store.saveAnswers(candidateId: "e1-c1", examId: "e1", [1: "4", 3: ""], at: running, window: AnswerWindow(graceSeconds: 10))
                    == .saved(at: running))
            #expect(try await store.answers(candidateId: "e1-c1") == [1: "4", 2: "서울"], "a later save wins; an empty one clears")
            #expect(try await store.answeredCounts(examId: "e1") == ["e1-c1": 2])

            _ = try await store.endExam(examId: "e1", at: end, actor: "admin", reason: nil, leaseUntil: end)
            try await store.completeCandidates(examId: "e1", at: end)
            let late = end.adding(seconds: 10)
            #expect(
                try await store.saveAnswers(candidateId: "e1-c1", examId: "e1", [3: "1"], at: late, window: AnswerWindow(graceSeconds: 10))
                    == .savedLate(at: late, endDatetime: end))
            let tooLate = end.adding(seconds: 11)
            #expect(
                try await store.saveAnswers(candidateId: "e1-c1", examId: "e1", [4: "1"], at: tooLate, window: AnswerWindow(graceSeconds: 10))
                    == .refused(endDatetime: end))
            #expect(try await store.answers(candidateId: "e1-c1") == [1: "4", 2: "서울", 3: "1"], "a refused save changes nothing")
            #expect(try await store.candidates(ids: ["e1-c1"]).first?.lastActiveTime == end, "the end time stays the last activity")
            let audit = try await store.auditLog(examId: "e1").filter { $0.actor == "e1-c1" }
            #expect(audit.map(\.action) == ["answers_saved", "answers_saved_late", "answers_refused"], "the second save came within the minute")
            #expect(audit.last?.detail?.contains("items 4") == true)
        },
        Case(name: "saves while the exam runs are audited once a minute per candidate; the first final save always") { store in
            _ = try await store.createExam(examId: "e1", title: "A", actor: "admin", at: t0)
            let people = [Registrant(id: "e1-c1", name: "One"), Registrant(id: "e1-c2", name: "Two")]
            _ = try await store.registerCandidates(examId: "e1", people, actor: "admin", at: t0)
            _ = try await store.startExam(examId: "e1", actor: "admin", at: t0)
            let window = AnswerWindow(graceSeconds: 10)
            // A page saving every second for three minutes: 180 saves, three audit rows.
            for second in 0..<180 {
                _ = try await store.saveAnswers(
                    candidateId: "e1-c1", examId: "e1", [1: "\(second % 4 + 1)"], at: t0.adding(seconds: Int64(second)), window: window)
            }
            // Another candidate's minute is its own; its first final save is audited within it, a second one is not.
            _ = try await store.saveAnswers(candidateId: "e1-c2", examId: "e1", [1: "1"], at: t0, window: window)
            for second in [5, 6] as [Int64] {
                _ = try await store.saveAnswers(
                    candidateId: "e1-c2", examId: "e1", [2: "2"], at: t0.adding(seconds: second), window: window, final: true)
            }
            let audit = try await store.auditLog(examId: "e1").filter { $0.action == "answers_saved" }
            #expect(audit.filter { $0.actor == "e1-c1" }.map(\.at) == [0, 60, 120].map { t0.adding(seconds: $0) })
            #expect(audit.filter { $0.actor == "e1-c2" }.map(\.detail) == ["items 1", "items 2 (final save)"])
            #expect(try await store.answers(candidateId: "e1-c1") == [1: "4"], "every save was taken, audited or not")
            #expect(try await store.candidates(ids: ["e1-c2"]).first?.finalSavedAt == t0.adding(seconds: 6))
        },
        Case(name: "a candidate saves only into their own exam") { store in
            try await startedExam(store, id: "e1", candidates: 1)
            try await startedExam(store, id: "e2", candidates: 1)
            let error = await #expect(throws: StoreError.self) {
                _ = try await store.saveAnswers(candidateId: "e1-c1", examId: "e2", [1: "1"], at: t0, window: AnswerWindow(graceSeconds: 10))
            }
            #expect(error.map { ExamBellError($0).status } == 404)
            #expect(try await store.answers(candidateId: "e1-c1").isEmpty)
            #expect(try await store.answeredCounts(examId: "e2").isEmpty)
        },
    ]
}
