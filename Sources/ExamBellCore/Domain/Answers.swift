/// The answer sheet of an exam plan: numbered items, the multiple-choice ones first
/// (items 1…choice, four options each), then the short-answer ones.
public struct ExamItems: Sendable, Hashable, Codable {
    /// Multiple-choice items.
    public var choice: Int
    /// Short-answer items, numbered after the multiple-choice ones.
    public var short: Int

    /// Options of a multiple-choice item, answered "1" … "4".
    public static let optionsPerChoiceItem = 4
    /// Items of one exam at most.
    public static let maxItems = 200
    /// Characters of one short answer at most.
    public static let maxShortAnswerLength = 500
    /// What an exam created without an item count gets.
    public static let standard = ExamItems(choice: 20, short: 0)

    public init(choice: Int, short: Int) {
        self.choice = choice
        self.short = short
    }

    public var count: Int { choice + short }

    /// 400 unless 1 to `maxItems` items, none negative.
    public func validate() throws {
        guard choice >= 0, short >= 0, (1...Self.maxItems).contains(count) else {
            throw ExamBellError.badRequest(
                code: "invalid_items", "An exam has 1 to \(Self.maxItems) items (choiceItems + shortItems), none negative."
            )
        }
    }

    /// Checks answers keyed by item number ("1" …) and returns them by number; an empty
    /// string clears an answer. 400 naming the first wrong item.
    public func validate(_ answers: [String: String]) throws -> [Int: String] {
        guard !answers.isEmpty, answers.count <= count else {
            throw ExamBellError.badRequest(code: "invalid_answers", "Send 1 to \(count) answers, keyed by item number.")
        }
        var result: [Int: String] = [:]
        for (key, value) in answers {
            guard let item = Int(key), String(item) == key, (1...count).contains(item) else {
                throw ExamBellError.badRequest(code: "invalid_item", "Item \(key) is not an item number of this exam (1 to \(count)).")
            }
            if item <= choice {
                guard value.isEmpty || (Int(value).map { (1...Self.optionsPerChoiceItem).contains($0) && String($0) == value } ?? false)
                else {
                    throw ExamBellError.badRequest(
                        code: "invalid_answer", "Item \(item) is multiple choice: answer \"1\" to \"\(Self.optionsPerChoiceItem)\" or \"\"."
                    )
                }
            } else {
                guard TextLimit.fits(value, characters: Self.maxShortAnswerLength),
                    !value.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" })
                else {
                    throw ExamBellError.badRequest(
                        code: "invalid_answer",
                        "Item \(item) takes at most \(Self.maxShortAnswerLength) characters (\(4 * Self.maxShortAnswerLength) bytes) of text."
                    )
                }
            }
            result[item] = value
        }
        return result
    }
}

/// What the DB did with a candidate's answer save.
public enum AnswerSave: Sendable, Hashable {
    /// Saved while the exam runs.
    case saved(at: Timestamp)
    /// Saved after the end, within the grace window for answers already in flight.
    case savedLate(at: Timestamp, endDatetime: Timestamp)
    /// Refused: the exam ended before the grace window. Audited all the same.
    case refused(endDatetime: Timestamp)
}

/// The rule of when an answer save is taken (seed: nothing answered before the end is lost,
/// no candidate keeps answering): while the exam runs; after its end only within
/// `graceSeconds`, for saves already in flight when it ended (taken, audited as late); later
/// ones are refused (audited too). A scheduled exam takes none.
///
/// The store applies it to the plan it reads inside the save's transaction, so the decision
/// and the write see the same exam.
public struct AnswerWindow: Sendable, Hashable {
    public var graceSeconds: Int
    /// Bytes of refused answers kept per candidate as its open late submission (the latest
    /// answer of each item, never every attempt); a save that would pass it is refused with
    /// 413 `budget_exceeded` and nothing of it is kept.
    public var lateBytesPerCandidate: Int

    /// A candidate's saves while the exam runs are audited at most once in this many seconds
    /// (the answers keep each item's own save time): a page saving at its whole budget adds a
    /// row a minute to the audit log, not two a second. The first final save is always audited.
    public var savesAuditedEvery: Int

    public init(graceSeconds: Int, lateBytesPerCandidate: Int = 256 * 1024, savesAuditedEvery: Int = 60) {
        self.graceSeconds = graceSeconds
        self.lateBytesPerCandidate = lateBytesPerCandidate
        self.savesAuditedEvery = savesAuditedEvery
    }

    /// Whether a save with `outcome` gets its own audit row, when the candidate's saves were
    /// last audited at `lastAudited` and `firstFinal` says it is the page's first final save.
    /// Saves in the grace window are all audited (the window bounds them); a refused save is
    /// audited with the late submission it opens (`keepLate`).
    public func audits(_ outcome: AnswerSave, at time: Timestamp, lastAudited: Timestamp?, firstFinal: Bool) -> Bool {
        guard case .saved = outcome else { return true }
        guard !firstFinal, let lastAudited else { return true }
        return time >= lastAudited.adding(seconds: Int64(savesAuditedEvery))
    }

    /// The refusal of a late save that would pass `lateBytesPerCandidate`.
    public func lateBudgetExceeded() -> ExamBellError {
        ExamBellError(
            status: 413, code: "budget_exceeded",
            message: "Budget exceeded: late submissions per candidate (\(lateBytesPerCandidate) bytes); nothing of this save was kept."
        )
    }

    /// What becomes of a save at `time` by `candidate` in `plan`: the candidate's own end
    /// counts when it ended alone (handed in, or its own time passed). 409
    /// `exam_not_started` for a scheduled exam.
    public func decide(_ plan: ExamPlan, candidate: Candidate? = nil, at time: Timestamp) throws -> AnswerSave {
        if plan.status == .scheduled {
            throw ExamBellError.conflict(code: "exam_not_started", "Exam \(plan.examId) has not started; answers are taken once it runs.")
        }
        guard let end = candidate?.endTime(in: plan) ?? (plan.status == .completed ? plan.endDatetime ?? time : nil) else {
            return .saved(at: time)
        }
        return time <= end.adding(seconds: Int64(graceSeconds)) ? .savedLate(at: time, endDatetime: end) : .refused(endDatetime: end)
    }

    /// The audit row's action and detail for `outcome`, a save of `items` at `time`.
    public func audit(_ outcome: AnswerSave, items: [Int], at time: Timestamp) -> (action: String, detail: String) {
        let detail = "items \(items.map(String.init).joined(separator: ", "))"
        switch outcome {
        case .saved:
            return ("answers_saved", detail)
        case .savedLate(_, let end):
            return (
                "answers_saved_late",
                detail + ", \(time.secondsSince1970 - end.secondsSince1970) s after the end (within the \(graceSeconds) s grace window)"
            )
        case .refused(let end):
            return (
                "answers_refused",
                detail
                    + ", \(time.secondsSince1970 - end.secondsSince1970) s after the end (grace window \(graceSeconds) s); kept as a late submission"
            )
        }
    }
}
