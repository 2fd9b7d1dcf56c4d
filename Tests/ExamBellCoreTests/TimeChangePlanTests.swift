import ExamBellCore
import Testing

/// The time-change rule without a database: who moves, to what, and what is refused.
@Suite("Time changes planned", .timeLimit(.minutes(1)))
struct TimeChangePlanTests {
    let now = Timestamp(iso8601: "2026-12-07T10:00:00Z")!
    var planned: Timestamp { now.adding(seconds: 3600) }
    var exam: ExamPlan {
        ExamPlan(examId: "e1", title: "T", status: .inProgress, createdAt: now, scheduledEndDatetime: planned)
    }
    func candidate(_ id: String, own: Timestamp? = nil) -> Candidate {
        Candidate(candidateId: id, examId: "e1", name: id, status: .inProgress, scheduledEndDatetime: own)
    }

    @Test("for everyone: the exam's end moves; an accommodation moves by the same amount and keeps its extra time")
    func everyone() throws {
        let running = [candidate("c1"), candidate("c2", own: planned.adding(seconds: 900))]
        let plan = try TimeChange(amount: .minutes(10), candidateIds: nil).plan(for: exam, running: running, listed: nil, at: now)
        #expect(plan.scheduledEndDatetime == planned.adding(seconds: 600) && plan.everyone)
        #expect(plan.affected == ["c1": planned.adding(seconds: 600), "c2": planned.adding(seconds: 1500)])
        #expect(plan.own == ["c2": planned.adding(seconds: 1500)] && plan.listed.isEmpty)
        #expect(
            plan.event(examId: "e1")
                == ExamTimeEvent(examId: "e1", scheduledEndDatetime: plan.scheduledEndDatetime, everyone: true, candidates: plan.own))
    }

    @Test("for listed candidates: each from its own planned end; the exam's end stays")
    func listed() throws {
        let listed = [candidate("c1"), candidate("c3", own: planned.adding(seconds: 300))]
        let plan = try TimeChange(amount: .minutes(5), candidateIds: ["c1", "c3"]).plan(for: exam, running: listed, listed: listed, at: now)
        #expect(plan.scheduledEndDatetime == planned && !plan.everyone)
        #expect(plan.listed == ["c1": planned.adding(seconds: 300), "c3": planned.adding(seconds: 600)])
        #expect(plan.affected == plan.listed && plan.own == plan.listed)
        let to = try TimeChange(amount: .to(now.adding(seconds: 60)), candidateIds: ["c1"]).plan(
            for: exam, running: listed, listed: [listed[0]], at: now)
        #expect(to.listed == ["c1": now.adding(seconds: 60)])
    }

    @Test("refused: a new end not in the future, minutes with no planned end, listed candidates of an exam with none")
    func refused() {
        let shorten = #expect(throws: ExamBellError.self) {
            try TimeChange(amount: .minutes(-61), candidateIds: nil).plan(for: exam, running: [], listed: nil, at: now)
        }
        #expect(shorten?.code == "invalid_time" && shorten?.status == 400)
        var open = exam
        open.scheduledEndDatetime = nil
        let minutes = #expect(throws: ExamBellError.self) {
            try TimeChange(amount: .minutes(5), candidateIds: nil).plan(for: open, running: [], listed: nil, at: now)
        }
        #expect(minutes?.code == "no_scheduled_end")
        let listedOnly = #expect(throws: ExamBellError.self) {
            try TimeChange(amount: .to(now.adding(seconds: 60)), candidateIds: ["c1"]).plan(
                for: open, running: [], listed: [candidate("c1")], at: now)
        }
        #expect(listedOnly?.code == "no_scheduled_end")
        let set = try? TimeChange(amount: .to(now.adding(seconds: 60)), candidateIds: nil).plan(for: open, running: [], listed: nil, at: now)
        #expect(set?.scheduledEndDatetime == now.adding(seconds: 60), "a time for everyone sets the planned end")
    }
}
