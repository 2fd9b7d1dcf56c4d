/// What a time change does, computed from the exam and its candidates before anything is
/// written: the exam-day rule "add 10 minutes for c1, c2" (or "everyone to 11:00") as plain
/// arithmetic, unit-tested without a database. The store reads the rows, checks they exist
/// and still run, and writes the plan.
public struct TimeChangePlan: Sendable, Hashable {
    /// The exam's planned end afterwards.
    public var scheduledEndDatetime: Timestamp
    /// Whether the change is for everyone still running.
    public var everyone: Bool
    /// The listed candidates' own ends afterwards (empty for a change for everyone).
    public var listed: [String: Timestamp]
    /// Every running candidate whose planned end changes, with the new end.
    public var affected: [String: Timestamp]
    /// The candidates' own planned ends it writes: the listed ones, or for everyone the
    /// accommodated ones moved by the same amount (their extra time stays extra).
    public var own: [String: Timestamp]

    /// The event the browsers learn it from.
    public func event(examId: String) -> ExamTimeEvent {
        ExamTimeEvent(examId: examId, scheduledEndDatetime: scheduledEndDatetime, everyone: everyone, candidates: own)
    }
}

extension TimeChange {
    /// Plans this change of `plan` at `at`: for `listed` (the listed candidates' rows, each
    /// running, in the order asked), or when nil for everyone in `running`. 400
    /// `no_scheduled_end` for minutes with no planned end to add them to (or listed candidates
    /// of an exam with no planned end), 400 `invalid_time` for a new end not after `at`.
    public func plan(for plan: ExamPlan, running: [Candidate], listed: [Candidate]?, at: Timestamp) throws -> TimeChangePlan {
        func moved(_ current: Timestamp?) throws -> Timestamp {
            switch amount {
            case .to(let time): return time
            case .minutes(let minutes):
                guard let current else {
                    throw ExamBellError.badRequest(
                        code: "no_scheduled_end", "Exam \(plan.examId) has no planned end to add minutes to; give scheduledEndDatetime.")
                }
                return current.adding(seconds: Int64(minutes) * 60)
            }
        }
        func future(_ time: Timestamp, _ whose: String) throws {
            guard time > at else {
                throw ExamBellError.badRequest(
                    code: "invalid_time", "The new end of \(whose) (\(time.iso8601)) is not in the future (now \(at.iso8601)).")
            }
        }
        var examEnd = plan.scheduledEndDatetime
        var listedEnds: [String: Timestamp] = [:]
        var affected: [String: Timestamp] = [:]
        var own: [String: Timestamp] = [:]
        if let listed {
            for candidate in listed {
                let time = try moved(candidate.plannedEnd(in: plan))
                try future(time, candidate.candidateId)
                listedEnds[candidate.candidateId] = time
            }
            affected = listedEnds
            own = listedEnds
        } else {
            let newEnd = try moved(plan.scheduledEndDatetime)
            try future(newEnd, "exam \(plan.examId)")
            // Accommodations keep their extra time: own ends move by the same amount.
            let shift = plan.scheduledEndDatetime.map { newEnd.secondsSince1970 - $0.secondsSince1970 } ?? 0
            for candidate in running {
                if let mine = candidate.scheduledEndDatetime {
                    own[candidate.candidateId] = mine.adding(seconds: shift)
                    affected[candidate.candidateId] = own[candidate.candidateId]
                } else {
                    affected[candidate.candidateId] = newEnd
                }
            }
            examEnd = newEnd
        }
        guard let examEnd else {
            // Listed candidates of an exam with no planned end: they still need a time.
            throw ExamBellError.badRequest(code: "no_scheduled_end", "Exam \(plan.examId) has no planned end; set one for everyone first.")
        }
        return TimeChangePlan(scheduledEndDatetime: examEnd, everyone: listed == nil, listed: listedEnds, affected: affected, own: own)
    }
}
