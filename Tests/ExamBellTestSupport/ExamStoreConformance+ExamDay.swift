import ExamBellCore
import Testing

/// The exam day's store rules: time changes, single ends, late saves, due ends, announcements.
extension ExamStoreConformance {
    static let examDayCases: [Case] = [
        Case(name: "a time change planned from facts that changed before it was applied writes nothing: 409, the exam as it was") {
            store in
            let planned = t0.adding(seconds: 3600)
            _ = try await store.createExam(examId: "e1", title: "A", items: .standard, scheduledEnd: planned, actor: "admin", at: t0)
            _ = try await store.registerCandidates(
                examId: "e1", (1...3).map { Registrant(id: "e1-c\($0)", name: "C\($0)") }, actor: "admin", at: t0
            )
            _ = try await store.startExam(examId: "e1", actor: "admin", at: t0)
            let now = t0.adding(seconds: 60)
            // Planned for everyone, then another change moves the exam's end first.
            let everyone = TimeChange(amount: .minutes(5), candidateIds: nil)
            let facts = try await store.timeChangeFacts(examId: "e1", candidateIds: nil)
            let stale = try everyone.plan(for: facts.plan, running: facts.running, listed: nil, at: now)
            _ = try await store.changeTime(
                examId: "e1", TimeChange(amount: .minutes(1), candidateIds: nil), actor: "admin", reason: "first", at: now,
                preview: false, leaseUntil: now
            )
            let moved = await #expect(throws: StoreError.self) {
                _ = try await store.applyTimeChange(
                    examId: "e1", stale, from: facts, actor: "admin", reason: "stale", at: now, leaseUntil: now)
            }
            #expect(moved?.code == "time_changed")
            #expect(try await store.exam("e1")?.scheduledEndDatetime == planned.adding(seconds: 60), "the first change stands alone")
            // Planned for two listed candidates, then one of them ends alone.
            let listedIds = ["e1-c1", "e1-c2"]
            let listedFacts = try await store.timeChangeFacts(examId: "e1", candidateIds: listedIds)
            let listedPlan = try TimeChange(amount: .minutes(10), candidateIds: listedIds).plan(
                for: listedFacts.plan, running: listedFacts.running, listed: listedIds.compactMap { listedFacts.listed[$0] }, at: now)
            _ = try await store.endCandidates(examId: "e1", candidateIds: ["e1-c2"], at: now, actor: "admin", reason: nil, leaseUntil: now)
            let ended = await #expect(throws: StoreError.self) {
                _ = try await store.applyTimeChange(
                    examId: "e1", listedPlan, from: listedFacts, actor: "admin", reason: "stale", at: now, leaseUntil: now)
            }
            #expect(ended?.code == "time_changed")
            #expect(
                try await store.candidates(examId: "e1").map(\.scheduledEndDatetime) == [nil, nil, nil],
                "the running candidate's end was not written either: nothing of the plan was")
            let audit = try await store.auditLog(examId: "e1").filter { $0.action == "change_time" }
            #expect(audit.map(\.reason) == ["first"])
        },
        Case(name: "time changes: for everyone (accommodations keep their extra), for listed candidates, refusals, preview") { store in
            let planned = t0.adding(seconds: 3600)
            _ = try await store.createExam(examId: "e1", title: "A", items: .standard, scheduledEnd: planned, actor: "admin", at: t0)
            _ = try await store.registerCandidates(
                examId: "e1", (1...3).map { Registrant(id: "e1-c\($0)", name: "C\($0)") }, actor: "admin", at: t0
            )
            let now = t0.adding(seconds: 60)
            await #expect(throws: StoreError.self, "a scheduled exam's time does not move") {
                _ = try await store.changeTime(
                    examId: "e1", TimeChange(amount: .minutes(5), candidateIds: nil), actor: "admin", reason: "r", at: now,
                    preview: false, leaseUntil: now
                )
            }
            _ = try await store.startExam(examId: "e1", actor: "admin", at: t0)
            let listed = try await store.changeTime(
                examId: "e1", TimeChange(amount: .minutes(10), candidateIds: ["e1-c3"]), actor: "admin", reason: "accommodation",
                at: now, preview: false, leaseUntil: now
            )
            #expect(listed.listed == ["e1-c3": planned.adding(seconds: 600)])
            #expect(listed.event == ExamTimeEvent(examId: "e1", scheduledEndDatetime: planned, everyone: false, candidates: listed.listed))
            #expect(listed.outbox?.topic == QueueStream.events)
            let preview = try await store.changeTime(
                examId: "e1", TimeChange(amount: .minutes(5), candidateIds: nil), actor: "admin", reason: "power cut", at: now,
                preview: true, leaseUntil: now
            )
            #expect(preview.outbox == nil)
            #expect(preview.affected["e1-c1"] == planned.adding(seconds: 300))
            #expect(preview.affected["e1-c3"] == planned.adding(seconds: 900))
            #expect(try await store.exam("e1")?.scheduledEndDatetime == planned, "a preview changes nothing")
            let everyone = try await store.changeTime(
                examId: "e1", TimeChange(amount: .minutes(5), candidateIds: nil), actor: "admin", reason: "power cut", at: now,
                preview: false, leaseUntil: now
            )
            #expect(everyone.scheduledEndDatetime == planned.adding(seconds: 300))
            #expect(everyone.event.candidates == ["e1-c3": planned.adding(seconds: 900)], "the accommodation keeps its extra 10 minutes")
            #expect(try await store.exam("e1")?.scheduledEndDatetime == planned.adding(seconds: 300))
            let rows = try await store.candidates(examId: "e1")
            #expect(rows.map(\.scheduledEndDatetime) == [nil, nil, planned.adding(seconds: 900)])
            let past = await #expect(throws: ExamBellError.self) {
                _ = try await store.changeTime(
                    examId: "e1", TimeChange(amount: .to(now), candidateIds: nil), actor: "admin", reason: "r", at: now, preview: false,
                    leaseUntil: now
                )
            }
            #expect(past?.status == 400)
            let unknown = await #expect(throws: StoreError.self) {
                _ = try await store.changeTime(
                    examId: "e1", TimeChange(amount: .minutes(1), candidateIds: ["nobody"]), actor: "admin", reason: "r", at: now,
                    preview: false, leaseUntil: now
                )
            }
            #expect(unknown.map { ExamBellError($0).status } == 404)
            _ = try await store.endCandidates(examId: "e1", candidateIds: ["e1-c2"], at: now, actor: "admin", reason: nil, leaseUntil: now)
            let ended = await #expect(throws: StoreError.self) {
                _ = try await store.changeTime(
                    examId: "e1", TimeChange(amount: .minutes(1), candidateIds: ["e1-c2"]), actor: "admin", reason: "r", at: now,
                    preview: false, leaseUntil: now
                )
            }
            #expect(ended?.code == "candidate_ended")
            let audit = try await store.auditLog(examId: "e1").filter { $0.action == "change_time" }
            #expect(audit.map(\.reason) == ["accommodation", "power cut"], "each change audited with its reason, previews not")
            // The report's record of them: who, when, to what, for whom; refused ones and previews absent.
            let facts = try await store.reportFacts(examId: "e1")
            #expect(
                facts.timeChanges == [
                    TimeChangeRecord(
                        at: now, actor: "admin", reason: "accommodation", everyone: false, scheduledEndDatetime: planned,
                        ends: ["e1-c3": planned.adding(seconds: 600)]),
                    TimeChangeRecord(
                        at: now, actor: "admin", reason: "power cut", everyone: true, scheduledEndDatetime: planned.adding(seconds: 300),
                        ends: ["e1-c3": planned.adding(seconds: 900)]),
                ])
            #expect(facts.endedBy == ["e1-c2": "operator"])
            await #expect(throws: StoreError.self) { _ = try await store.reportFacts(examId: "nope") }
        },
        Case(name: "a candidate ends alone once, with its own time; the exam's end ends the rest at the exam's time") { store in
            try await startedExam(store, id: "e1", candidates: 3)
            let alone = t0.adding(seconds: 100)
            let first = try await store.endCandidates(
                examId: "e1", candidateIds: ["e1-c1"], at: alone, actor: "e1-c1", reason: "handed in", leaseUntil: alone
            )
            #expect(first.ended == ["e1-c1"])
            #expect(first.outbox?.content == .event(.candidateEnd(CandidateEndEvent(examId: "e1", candidateIds: ["e1-c1"], timestamp: alone))))
            let again = try await store.endCandidates(
                examId: "e1", candidateIds: ["e1-c1"], at: alone.adding(seconds: 5), actor: "admin", reason: nil, leaseUntil: alone
            )
            #expect(again.ended.isEmpty && again.outbox == nil)
            #expect(again.alreadyCompleted == ["e1-c1": alone])
            #expect(try await store.candidateIds(examId: "e1") == ["e1-c2", "e1-c3"], "the exam's end no longer concerns c1")
            let unknown = await #expect(throws: StoreError.self) {
                _ = try await store.endCandidates(examId: "e1", candidateIds: ["e2-c1"], at: alone, actor: "admin", reason: nil, leaseUntil: alone)
            }
            #expect(unknown?.code == "candidate_not_found")
            _ = try await store.endExam(examId: "e1", at: end, actor: "admin", reason: nil, leaseUntil: end)
            try await store.completeCandidates(examId: "e1", at: end)
            let rows = try await store.candidates(examId: "e1")
            #expect(rows.map(\.status) == [.completed, .completed, .completed])
            #expect(rows.map(\.lastActiveTime) == [alone, end, end], "the one who ended alone keeps its time")
            #expect(try await store.candidateIds(examId: "e1") == ["e1-c2", "e1-c3"])
            let late = try await store.endCandidates(
                examId: "e1", candidateIds: ["e1-c2"], at: end.adding(seconds: 9), actor: "a", reason: nil, leaseUntil: end)
            #expect(late.alreadyCompleted == ["e1-c2": end])
            // Its answers stop at its own end (plus the grace window), not the exam's.
            let window = AnswerWindow(graceSeconds: 10)
            #expect(
                try await store.saveAnswers(candidateId: "e1-c1", examId: "e1", [1: "1"], at: alone.adding(seconds: 10), window: window, final: true)
                    == .savedLate(at: alone.adding(seconds: 10), endDatetime: alone))
            #expect(
                try await store.saveAnswers(candidateId: "e1-c1", examId: "e1", [2: "3"], at: alone.adding(seconds: 11), window: window)
                    == .refused(endDatetime: alone))
            let kept = try await store.lateSubmissions(examId: "e1", after: nil, limit: 10)
            #expect(kept.map(\.answers) == [["2": "3"]], "a refused save is kept with its content")
            #expect(kept.first?.secondsAfterEnd == 11)
            let keptId = try #require(kept.first?.id)
            let accepted = try await store.decideLateSubmission(
                examId: "e1", id: keptId, accept: true, actor: "admin", reason: "power cut in room 2", at: end
            )
            #expect(accepted.decision == "accepted")
            #expect(try await store.answers(candidateId: "e1-c1")[2] == "3", "an accepted late submission joins the sheet")
            let twice = await #expect(throws: StoreError.self) {
                _ = try await store.decideLateSubmission(examId: "e1", id: keptId, accept: false, actor: "admin", reason: nil, at: end)
            }
            #expect(twice?.code == "already_decided")
            let missing = await #expect(throws: StoreError.self) {
                _ = try await store.decideLateSubmission(examId: "e2", id: keptId, accept: true, actor: "admin", reason: nil, at: end)
            }
            #expect(missing?.code == "late_submission_not_found")
            let c1 = try await store.candidates(ids: ["e1-c1"]).first
            #expect(c1?.finalSavedAt == alone.adding(seconds: 10))
            #expect(c1?.finalSavedItems == 1)
            #expect(try await store.auditLog(examId: "e1").filter { $0.action == "end_candidate" }.map(\.actor) == ["e1-c1"])
        },
        Case(name: "late saves gather per candidate: the latest per item, one audit row, within the byte budget, paged") { store in
            try await startedExam(store, id: "e1", candidates: 3)
            _ = try await store.endExam(examId: "e1", at: end, actor: "admin", reason: nil, leaseUntil: end)
            try await store.completeCandidates(examId: "e1", at: end)
            // {"1":"1","2":"1","3":"1","4":"1"} is 33 bytes: four items fit, a fifth does not.
            let window = AnswerWindow(graceSeconds: 10, lateBytesPerCandidate: 40)
            let late = end.adding(seconds: 60)
            // Sent at once, each with another item: every one is kept, in one row.
            let outcomes = await withTaskGroup(of: Bool.self) { group in
                for item in 1...4 {
                    group.addTask {
                        (try? await store.saveAnswers(candidateId: "e1-c1", examId: "e1", [item: "2"], at: late, window: window))
                            == .refused(endDatetime: end)
                    }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(outcomes == 4)
            // The same item again: its latest answer replaces the earlier one.
            _ = try await store.saveAnswers(
                candidateId: "e1-c1", examId: "e1", [1: "1", 2: "1", 3: "1", 4: "1"], at: late.adding(seconds: 1), window: window)
            var rows = try await store.lateSubmissions(examId: "e1", after: nil, limit: 10)
            #expect(rows.count == 1, "one open row per candidate, not one per attempt")
            #expect(rows.first?.answers == ["1": "1", "2": "1", "3": "1", "4": "1"])
            #expect(rows.first?.attempts == 5)
            #expect(rows.first?.arrivedAt == late.adding(seconds: 1))
            // Past the budget: refused with 413, and nothing of it kept.
            let over = await #expect(throws: ExamBellError.self) {
                _ = try await store.saveAnswers(candidateId: "e1-c1", examId: "e1", [5: "1"], at: late.adding(seconds: 2), window: window)
            }
            #expect(over?.status == 413)
            #expect(over?.code == "budget_exceeded")
            rows = try await store.lateSubmissions(examId: "e1", after: nil, limit: 10)
            #expect(rows.first?.answers.count == 4 && rows.first?.attempts == 5, "the refused save changed nothing")
            let audited = try await store.auditLog(examId: "e1").filter { $0.action == "answers_refused" && $0.actor == "e1-c1" }
            #expect(audited.count == 1, "the first late save is audited; the rest are counted in the row")
            // Once decided, the next late save opens a new row.
            let first = try #require(rows.first?.id)
            _ = try await store.decideLateSubmission(examId: "e1", id: first, accept: false, actor: "admin", reason: "too late", at: late)
            _ = try await store.saveAnswers(candidateId: "e1-c1", examId: "e1", [6: "3"], at: late.adding(seconds: 3), window: window)
            for candidate in ["e1-c2", "e1-c3"] {
                _ = try await store.saveAnswers(candidateId: candidate, examId: "e1", [1: "4"], at: late, window: window)
            }
            // Pages: two rows, then the rest.
            let page1 = try await store.lateSubmissions(examId: "e1", after: nil, limit: 2)
            let page2 = try await store.lateSubmissions(examId: "e1", after: page1.last?.id, limit: 2)
            let page3 = try await store.lateSubmissions(examId: "e1", after: page2.last?.id, limit: 2)
            #expect(page1.count == 2 && page2.count == 2 && page3.isEmpty)
            #expect(Set((page1 + page2).map(\.id)).count == 4)
            #expect((page1 + page2).filter { $0.candidateId == "e1-c1" }.map(\.answers) == [["1": "1", "2": "1", "3": "1", "4": "1"], ["6": "3"]])
        },
        Case(name: "concurrent single ends of one candidate make exactly one end, one event, one audit row") { store in
            try await startedExam(store, id: "e1", candidates: 2)
            let backlog = try await store.outboxBacklog()
            let outcomes = await withTaskGroup(of: Result<CandidateEndResult, any Error>.self) { group in
                for attempt in 0..<20 {
                    group.addTask {
                        let at = t0.adding(seconds: Int64(100 + attempt))
                        do {
                            return .success(
                                try await store.endCandidates(
                                    examId: "e1", candidateIds: ["e1-c1"], at: at, actor: "node\(attempt % 2)", reason: nil, leaseUntil: at
                                ))
                        } catch {
                            return .failure(error)
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            // 20 callers on one row and a pool of 16: on a loaded machine a caller may be
            // refused in time (no connection within the call's bound, or its lock wait ran
            // out). A refusal is `unavailable` and changes nothing; the DB below holds the truth.
            let results = outcomes.compactMap { try? $0.get() }
            let refusals = outcomes.compactMap { outcome -> (any Error)? in
                if case .failure(let error) = outcome { return error }
                return nil
            }
            #expect(refusals.allSatisfy { ($0 as? StoreError)?.isUnavailable == true }, "\(refusals)")
            #expect(!results.isEmpty)
            #expect(results.filter { !$0.ended.isEmpty }.count <= 1)
            #expect(results.filter { $0.outbox != nil }.count <= 1)
            let time = try #require(try await store.candidates(ids: ["e1-c1"]).first?.lastActiveTime)
            #expect(results.allSatisfy { $0.ended == ["e1-c1"] || $0.alreadyCompleted == ["e1-c1": time] }, "every caller learns the one time")
            #expect(try await store.candidates(ids: ["e1-c1"]).first?.status == .completed)
            #expect(try await store.auditLog(examId: "e1").filter { $0.action == "end_candidate" }.count == 1, "one end")
            #expect(try await store.outboxBacklog() == backlog + 1, "one event")
        },
        Case(name: "ends of overlapping candidates at once, in different orders: each candidate ends once, nobody fails") { store in
            try await startedExam(store, id: "e1", candidates: 1201)
            let ids = (1...1200).map { "e1-c\($0)" }
            // Batches over the 500-row chunk size, overlapping, each in its own order. Four: with
            // rows taken in order they queue behind each other, and eight queued past the 5 s
            // lock_timeout in a loaded full run (a refusal that changed nothing, not a deadlock).
            let batches = (0..<4).map { index in
                let batch = Array(ids[(index * 100)..<min(ids.count, index * 100 + 700)])
                return index.isMultiple(of: 2) ? batch : batch.reversed()
            }
            let results = try await withThrowingTaskGroup(of: CandidateEndResult.self) { group in
                for (index, batch) in batches.enumerated() {
                    group.addTask {
                        let at = t0.adding(seconds: Int64(100 + index))
                        return try await store.endCandidates(
                            examId: "e1", candidateIds: batch, at: at, actor: "node\(index)", reason: nil, leaseUntil: at
                        )
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let ended = results.flatMap(\.ended)
            #expect(ended.count == Set(ended).count, "no candidate ended twice")
            #expect(Set(ended) == Set(batches.joined()), "every listed candidate ended")
            #expect(try await store.auditLog(examId: "e1").filter { $0.action == "end_candidate" }.count == Set(ended).count)
            #expect(try await store.candidates(ids: ["e1-c1201"]).first?.status == .inProgress, "an unlisted candidate is untouched")
        },
        Case(name: "due ends: candidates past their own end end alone; an exam waits for a later accommodation") { store in
            let planned = t0.adding(seconds: 3600)
            _ = try await store.createExam(examId: "e1", title: "A", items: .standard, scheduledEnd: planned, actor: "admin", at: t0)
            _ = try await store.registerCandidates(
                examId: "e1", (1...3).map { Registrant(id: "e1-c\($0)", name: "C\($0)") }, actor: "admin", at: t0
            )
            _ = try await store.startExam(examId: "e1", actor: "admin", at: t0)
            _ = try await store.changeTime(
                examId: "e1", TimeChange(amount: .to(t0.adding(seconds: 600)), candidateIds: ["e1-c1"]), actor: "admin", reason: "early",
                at: t0, preview: false, leaseUntil: t0
            )
            _ = try await store.changeTime(
                examId: "e1", TimeChange(amount: .minutes(30), candidateIds: ["e1-c3"]), actor: "admin", reason: "extra", at: t0,
                preview: false, leaseUntil: t0
            )
            #expect(try await store.candidatesDueToEnd(at: t0.adding(seconds: 599)).isEmpty)
            #expect(try await store.candidatesDueToEnd(at: t0.adding(seconds: 600)) == ["e1": ["e1-c1"]])
            #expect(try await store.examsDueToEnd(at: planned).isEmpty, "c3 still has 30 minutes")
            #expect(try await store.candidatesDueToEnd(at: planned) == ["e1": ["e1-c1", "e1-c2"]])
            #expect(try await store.examsDueToEnd(at: planned.adding(seconds: 1800)) == ["e1"])
            #expect(try await store.candidatesDueToEnd(at: planned.adding(seconds: 1800)).isEmpty, "a due exam ends everyone at once")
            try await startedExam(store, id: "e2", candidates: 2)
            _ = try await store.changeTime(
                examId: "e2", TimeChange(amount: .to(t0.adding(seconds: 60)), candidateIds: nil), actor: "admin", reason: "r", at: t0,
                preview: false, leaseUntil: t0
            )
            #expect(try await store.examsDueToEnd(at: t0.adding(seconds: 60)) == ["e2"])
            #expect(try await store.candidatesDueToEnd(at: t0.adding(seconds: 60))["e2"] == nil, "its candidates are not ended one by one")
        },
        Case(name: "announcements are kept in order, for everyone or listed candidates; lock receipts are recorded once") { store in
            try await startedExam(store, id: "e1", candidates: 2)
            let (all, entry) = try await store.announce(
                examId: "e1", message: "10분 남았습니다", candidateIds: nil, actor: "admin", at: t0, leaseUntil: t0
            )
            #expect(entry.content == .event(.announcement(all)))
            let (one, _) = try await store.announce(
                examId: "e1", message: "Room 2", candidateIds: ["e1-c2"], actor: "proctor:p1", at: t0, leaseUntil: t0
            )
            #expect(all.announcementId != one.announcementId)
            #expect(try await store.announcements(examId: "e1", for: "e1-c1").map(\.message) == ["10분 남았습니다"])
            #expect(try await store.announcements(examId: "e1", for: "e1-c2").map(\.message) == ["10분 남았습니다", "Room 2"])
            #expect(try await store.announcements(examId: "e1", for: nil).map(\.candidateIds) == [nil, ["e1-c2"]])
            await #expect(throws: StoreError.self) {
                _ = try await store.announce(examId: "e1", message: "x", candidateIds: ["zz"], actor: "admin", at: t0, leaseUntil: t0)
            }
            #expect(try await store.recordLocks(["e1-c1": end, "nobody": end]) == 1)
            #expect(try await store.recordLocks(["e1-c1": end.adding(seconds: 5)]) == 0, "the first lock stays")
            #expect(try await store.candidates(ids: ["e1-c1"]).first?.lockedAt == end)
            // The device clock offset reported with a lock: kept once, like the lock.
            #expect(try await store.recordClockOffsets(["e1-c1": -300_004, "nobody": 1]) == 1)
            #expect(try await store.recordClockOffsets(["e1-c1": 12]) == 0, "the first report stays")
            let offsets = try await store.candidates(ids: ["e1-c1", "e1-c2"]).map { ($0.candidateId, $0.clockOffsetMs) }
            #expect(Dictionary(uniqueKeysWithValues: offsets) == ["e1-c1": -300_004, "e1-c2": nil])
            // An outbox row of each topic is claimed with its content.
            let claimed = try await store.claimOutbox(now: t0.adding(seconds: 1), leaseUntil: t0.adding(seconds: 60), limit: 10)
            #expect(claimed.map(\.topic) == [QueueStream.events, QueueStream.events])
        },
    ]
}
