/// The DB's role of the exam day: planned ends moved, candidates ended alone, announcements,
/// and the receipts that prove each screen locked and each answer arrived.
///
/// Changes that browsers must learn write, in the same transaction, an outbox row for
/// `queue:exam_events` (the relay publishes it after the commit, like `exam_end`).
public protocol ExamDayStore: Sendable {
    /// What a time change is planned from: the exam, its running candidates, and those of
    /// `candidateIds` that are candidates of it (any state). 404 for an exam that does not exist.
    func timeChangeFacts(examId: String, candidateIds: [String]?) async throws -> TimeChangeFacts

    /// Writes `plan`, made from `facts`, with its outbox, audit and time-change rows, only if
    /// the exam is still as it was planned from: a conditional update takes the exam's row
    /// while it runs, its planned end must be the one planned from, and every candidate whose
    /// own end it writes must still run. Otherwise it writes nothing and throws 409: the
    /// exam's state (`StoreError.wrongState`) when it no longer runs, else `time_changed`.
    /// It applies no exam-day rule itself: those are `changeTime`'s, before it.
    func applyTimeChange(
        examId: String, _ plan: TimeChangePlan, from facts: TimeChangeFacts, actor: String, reason: String, at: Timestamp,
        leaseUntil: Timestamp
    ) async throws -> OutboxEntry

    /// Ends candidates of a running exam alone at `at`, with the outbox row (`candidate_end`)
    /// and one audit row each. Candidates ended before are reported with their own time.
    /// 404 for an id not of the exam; 409 for a scheduled exam.
    /// `endedBy` is what each one's `candidate.ended` webhook event says.
    func endCandidates(
        examId: String, candidateIds: [String], at: Timestamp, actor: String, reason: String?, endedBy: CandidateEndCause,
        leaseUntil: Timestamp
    ) async throws -> CandidateEndResult

    /// Running candidates of running exams whose planned end (their own, else the exam's) is
    /// at or before `time`, by exam.
    func candidatesDueToEnd(at time: Timestamp) async throws -> [String: [String]]

    /// Stores an announcement with its outbox row and audit row.
    func announce(examId: String, message: String, candidateIds: [String]?, actor: String, at: Timestamp, leaseUntil: Timestamp)
        async throws -> (AnnouncementEvent, OutboxEntry)

    /// The announcements of an exam, oldest first; with `candidateId`, those meant for it.
    func announcements(examId: String, for candidateId: String?) async throws -> [AnnouncementEvent]

    /// Copies when candidates' pages reported their lock (final sync, state store → DB);
    /// a time already recorded stays. Returns rows changed.
    func recordLocks(_ times: [String: Timestamp]) async throws -> Int

    /// Records each candidate's device clock offset (ms) reported with its lock, where none
    /// was recorded yet; returns how many rows changed.
    func recordClockOffsets(_ offsets: [String: Int]) async throws -> Int

    /// The late submissions of an exam (saves that arrived after the grace window), oldest
    /// first: at most `limit`, those with an id above `after`. A candidate has at most one
    /// undecided one, holding the latest answer of each item it sent late.
    func lateSubmissions(examId: String, after: Int64?, limit: Int) async throws -> [LateSubmission]

    /// The operator's decision on a late submission, once: accepted ones go into the
    /// candidate's answer sheet (an item saved later in the sheet keeps the later answer);
    /// audited with the reason. 404 for an id not of the exam; 409 once decided.
    func decideLateSubmission(examId: String, id: Int64, accept: Bool, actor: String, reason: String?, at: Timestamp)
        async throws -> LateSubmission
}

/// A move of the planned end.
public struct TimeChange: Sendable, Hashable {
    public enum Amount: Sendable, Hashable {
        /// To this time.
        case to(Timestamp)
        /// By this many minutes (negative shortens) from each one's current planned end.
        case minutes(Int)
    }

    public var amount: Amount
    /// Only these candidates; nil: everyone (accommodated candidates move by the same amount).
    public var candidateIds: [String]?

    public init(amount: Amount, candidateIds: [String]?) {
        self.amount = amount
        self.candidateIds = candidateIds
    }
}

/// What a time change did (or would do, for a preview).
public struct TimeChangeResult: Sendable, Hashable {
    /// The exam's planned end afterwards.
    public var scheduledEndDatetime: Timestamp
    /// The listed candidates' own ends afterwards (empty for a change for everyone).
    public var listed: [String: Timestamp]
    /// Every running candidate whose planned end changes, with the new end.
    public var affected: [String: Timestamp]
    /// The event the browsers learn it from.
    public var event: ExamTimeEvent
    /// Its outbox row, leased to the caller (nil for a preview).
    public var outbox: OutboxEntry?

    public init(
        scheduledEndDatetime: Timestamp, listed: [String: Timestamp], affected: [String: Timestamp], event: ExamTimeEvent,
        outbox: OutboxEntry?
    ) {
        self.scheduledEndDatetime = scheduledEndDatetime
        self.listed = listed
        self.affected = affected
        self.event = event
        self.outbox = outbox
    }
}

/// What ending candidates alone did.
public struct CandidateEndResult: Sendable, Hashable {
    /// Ended by this call, at its time.
    public var ended: [String]
    /// Ended before (alone or with the exam), with their end time.
    public var alreadyCompleted: [String: Timestamp]
    /// The outbox row of the `candidate_end` event, leased to the caller (nil when none ended).
    public var outbox: OutboxEntry?

    public init(ended: [String], alreadyCompleted: [String: Timestamp], outbox: OutboxEntry?) {
        self.ended = ended
        self.alreadyCompleted = alreadyCompleted
        self.outbox = outbox
    }
}

/// Answers that reached the server after the grace window: kept, with their content and
/// arrival time, for the operator to decide on; never dropped silently.
public struct LateSubmission: Sendable, Hashable, Codable {
    public var id: Int64
    public var examId: String
    public var candidateId: String
    /// The latest answer of each item that arrived late.
    public var answers: [String: String]
    /// When the latest of its saves arrived.
    public var arrivedAt: Timestamp
    /// How long after the candidate's end the latest arrived, in seconds.
    public var secondsAfterEnd: Int64
    /// How many refused saves it gathers.
    public var attempts: Int
    /// `accepted` or `rejected` once the operator decided; nil until then.
    public var decision: String?
    public var decidedBy: String?
    public var decidedAt: Timestamp?

    public init(
        id: Int64, examId: String, candidateId: String, answers: [String: String], arrivedAt: Timestamp, secondsAfterEnd: Int64,
        attempts: Int = 1, decision: String? = nil, decidedBy: String? = nil, decidedAt: Timestamp? = nil
    ) {
        self.attempts = attempts
        self.id = id
        self.examId = examId
        self.candidateId = candidateId
        self.answers = answers
        self.arrivedAt = arrivedAt
        self.secondsAfterEnd = secondsAfterEnd
        self.decision = decision
        self.decidedBy = decidedBy
        self.decidedAt = decidedAt
    }
}

extension ExamDayStore {
    /// Ends candidates as an operator or proctor does.
    public func endCandidates(
        examId: String, candidateIds: [String], at: Timestamp, actor: String, reason: String?, leaseUntil: Timestamp
    ) async throws -> CandidateEndResult {
        try await endCandidates(
            examId: examId, candidateIds: candidateIds, at: at, actor: actor, reason: reason, endedBy: .byOperator, leaseUntil: leaseUntil
        )
    }
}

/// The rows a time change is planned from (`ExamDayStore.timeChangeFacts`).
public struct TimeChangeFacts: Sendable, Hashable {
    public var plan: ExamPlan
    /// Its candidates still running.
    public var running: [Candidate]
    /// The listed ids that are candidates of the exam, by id (empty for a change for everyone).
    public var listed: [String: Candidate]

    public init(plan: ExamPlan, running: [Candidate], listed: [String: Candidate]) {
        self.plan = plan
        self.running = running
        self.listed = listed
    }
}

extension ExamDayStore {
    /// Moves the planned end of a running exam, for everyone or for the listed candidates:
    /// reads the facts, plans the change by the exam-day rules (`TimeChange.plan`, plain
    /// arithmetic), and has the store apply the plan; with `preview`, plans and writes nothing.
    /// 409 for an exam not running, a listed candidate already ended, or an exam that changed
    /// while the change was planned; 404 for a listed id not of the exam; 400 for a time not
    /// after `at`, or minutes with no planned end to add them to.
    public func changeTime(
        examId: String, _ change: TimeChange, actor: String, reason: String, at: Timestamp, preview: Bool, leaseUntil: Timestamp
    ) async throws -> TimeChangeResult {
        let facts = try await timeChangeFacts(examId: examId, candidateIds: change.candidateIds)
        guard facts.plan.status == .inProgress else {
            throw StoreError.wrongState(examId, is: facts.plan.status, action: "change its time")
        }
        let listed = try change.candidateIds.map { ids in
            try ids.map { id in
                guard let candidate = facts.listed[id] else {
                    throw StoreError.notFound(code: "candidate_not_found", message: "\(id) is not a candidate of exam \(examId).")
                }
                guard candidate.status == .inProgress else {
                    throw StoreError.conflict(code: "candidate_ended", message: "Candidate \(id) has ended; its time cannot change.")
                }
                return candidate
            }
        }
        let plan = try change.plan(for: facts.plan, running: facts.running, listed: listed, at: at)
        let outbox =
            preview
            ? nil
            : try await applyTimeChange(
                examId: examId, plan, from: facts, actor: actor, reason: reason, at: at, leaseUntil: leaseUntil)
        return TimeChangeResult(
            scheduledEndDatetime: plan.scheduledEndDatetime, listed: plan.listed, affected: plan.affected,
            event: plan.event(examId: examId), outbox: outbox)
    }
}
