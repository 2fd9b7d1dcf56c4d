/// The DB (데이터베이스): the source of truth for exams, candidates, proctors, the outbox
/// and the audit log. One implementation per SQL backend (`SQLiteExamStore`, later
/// `PostgresExamStore`), all passing the same conformance suite.
///
/// Every method that changes data is one transaction: it applies whole or not at all.
/// Methods throw `StoreError`: `notFound` and `conflict` for what a caller asked wrong, and
/// `unavailable` when the database cannot be reached (the server maps them to 404, 409, 503).
/// A domain rule the store applies (the answer window, item counts) throws its own
/// `ExamBellError`.
public protocol ExamStore: ExamPlanStore, PeopleStore, AnswerStore, OutboxStore, AuditStore, ExamDayStore, OperatorStore, WebhookStore,
    ReceiptStore, ReportStore, StateArchiveStore
{
    /// Closes the store's connections; call once, after the last use.
    func shutdown() async throws
}

/// The DB's role of exams: their plans, start and end.
public protocol ExamPlanStore: Sendable {
    /// Creates an exam plan in `scheduled` with its answer sheet's items and, optionally, the
    /// time it is planned to end; audits it. 409 `exam_exists` when the id is taken.
    func createExam(
        examId: String, title: String, items: ExamItems, scheduledEnd: Timestamp?, actor: String, at: Timestamp
    ) async throws -> ExamPlan

    /// The plan with this id, or nil.
    func exam(_ examId: String) async throws -> ExamPlan?

    /// Plans, newest first: at most `limit`, those after the plan `after` in that order.
    func exams(after: String?, limit: Int) async throws -> [ExamPlan]

    /// `scheduled` → `in_progress`; its candidates become `in_progress`. 404 / 409 otherwise.
    func startExam(examId: String, actor: String, at: Timestamp) async throws -> ExamPlan

    /// The ids of the plans final sync's periodic pass looks at: every `in_progress` plan and
    /// every `completed` plan that ended at or after `endedSince`. An exam that ended long
    /// ago is left out, so the pass costs what is live, not what is history.
    func examsToSync(endedSince: Timestamp) async throws -> [String]

    /// The ids of `in_progress` plans whose planned end is at or before `time`.
    func examsDueToEnd(at time: Timestamp) async throws -> [String]

    /// The end transition as one conditional update: only an `in_progress` plan ends.
    ///
    /// In the same transaction it writes the outbox row carrying the queue message (leased
    /// to the caller until `leaseUntil`) and the audit row. The candidates' rows follow with
    /// `completeCandidates`, right after the message is published: the plan row decides the
    /// end, and updating thousands of candidate rows is kept off the path to the browsers. Of concurrent
    /// callers exactly one gets `.ended`; the others get `.alreadyCompleted` with the winner's
    /// plan. 404 for an unknown plan, 409 for a `scheduled` one.
    func endExam(
        examId: String, at endDatetime: Timestamp, actor: String, reason: String?, leaseUntil: Timestamp
    ) async throws -> EndTransition

    /// Completes every candidate of a completed plan that is not yet, with the plan's end
    /// time as their last activity. Idempotent.
    func completeCandidates(examId: String, at endDatetime: Timestamp) async throws
}

/// The DB's role of the candidates and proctors of exams, and what final sync copies back to them.
public protocol PeopleStore: Sendable {
    /// Registers candidates; one whose id belongs to another exam makes the whole call 409.
    /// A candidate added to a running exam starts `in_progress`; a completed exam refuses.
    func registerCandidates(examId: String, _ people: [Registrant], actor: String, at: Timestamp) async throws
        -> RegistrationResult

    /// Registers proctors, with the same rules as candidates.
    func registerProctors(examId: String, _ people: [Registrant], actor: String, at: Timestamp) async throws
        -> RegistrationResult

    /// The candidates of a plan, by id.
    func candidates(examId: String) async throws -> [Candidate]

    /// The candidates with these ids (any exam); unknown ids are absent.
    func candidates(ids: [String]) async throws -> [Candidate]

    /// The ids of a plan's candidates the exam's end concerns (cheaper than
    /// `candidates(examId:)`): every one but those who ended alone before it.
    func candidateIds(examId: String) async throws -> [String]

    /// The proctors of a plan, by id.
    func proctors(examId: String) async throws -> [Proctor]

    /// How many candidates of the plan are in each status (statuses with none are absent).
    func candidateCounts(examId: String) async throws -> [CandidateStatus: Int]

    /// Applies what the state store saw (final sync, Redis → DB): a later `last_active_time`
    /// wins, and a status only moves forward. Unknown ids are ignored. Returns rows changed.
    func applyCandidateActivity(_ activity: [String: CandidateStateValue]) async throws -> Int

    /// Copies when candidates' browsers acknowledged the end (final sync, Redis → DB) into
    /// `acknowledged_at`; a time already recorded stays. Returns rows changed.
    func recordAcknowledgements(_ times: [String: Timestamp]) async throws -> Int
}

/// The DB's role of candidates' answer sheets.
public protocol AnswerStore: Sendable {
    /// Saves a candidate's answers (item number → answer; "" clears) in one transaction with
    /// its audit row, as `window` decides for the plan and candidate read in that
    /// transaction: saved (the candidate marked active), saved late, or refused (kept as a
    /// late submission and audited). A `final` save (the page's last, after its lock) also
    /// records the candidate's `saved` step with the number of answered items. 404 for a
    /// candidate not of the plan; `window`'s refusal (409) for a `scheduled` exam.
    func saveAnswers(
        candidateId: String, examId: String, _ answers: [Int: String], at: Timestamp, window: AnswerWindow, final: Bool
    ) async throws -> AnswerSave

    /// A candidate's saved answers by item number (cleared ones absent).
    func answers(candidateId: String) async throws -> [Int: String]

    /// How many items each candidate of the plan has answered (candidates with none absent).
    func answeredCounts(examId: String) async throws -> [String: Int]
}

/// The DB's role of the transactional outbox the relay publishes from.
public protocol OutboxStore: Sendable {
    /// Takes up to `limit` outbox rows that are unpublished and not leased at `now`,
    /// leasing each until `leaseUntil` so that no other relay takes it meanwhile.
    func claimOutbox(now: Timestamp, leaseUntil: Timestamp, limit: Int) async throws -> [OutboxEntry]

    /// Marks an outbox row published.
    func markPublished(outboxId: Int64, at: Timestamp) async throws

    /// How many outbox rows wait to be published.
    func outboxBacklog() async throws -> Int

    /// The rows published at or after `since`, oldest first (to check them after a failover).
    func publishedOutbox(since: Timestamp) async throws -> [OutboxEntry]
}

/// The DB's role of the audit log.
public protocol AuditStore: Sendable {
    /// Appends one audit row.
    func audit(_ entry: AuditEntry) async throws

    /// The audit rows of a plan, oldest first: the latest `latest` of them, or all (nil).
    /// Rows not yet linked into the chain come last, without `seq` and hashes.
    func auditLog(examId: String, latest: Int?) async throws -> [AuditEntry]

    /// Links rows not yet in their exam's hash chain (of `examId`, or of any exam: a bounded
    /// batch); returns how many. Chainers on several nodes take turns on each exam's head.
    @discardableResult
    func chainAudit(examId: String?) async throws -> Int
}

extension AnswerStore {
    /// Saves answers as the candidate works (not the page's final save).
    public func saveAnswers(candidateId: String, examId: String, _ answers: [Int: String], at: Timestamp, window: AnswerWindow)
        async throws -> AnswerSave
    {
        try await saveAnswers(candidateId: candidateId, examId: examId, answers, at: at, window: window, final: false)
    }
}

extension ExamPlanStore {
    /// The exam, or 404 `exam_not_found`.
    public func existingExam(_ examId: String) async throws -> ExamPlan {
        guard let plan = try await exam(examId) else { throw StoreError.examNotFound(examId) }
        return plan
    }

    /// Creates an exam plan with the standard answer sheet and no planned end.
    public func createExam(examId: String, title: String, actor: String, at: Timestamp) async throws -> ExamPlan {
        try await createExam(examId: examId, title: title, items: .standard, scheduledEnd: nil, actor: actor, at: at)
    }
}

/// What `ExamStore.endExam` did.
public enum EndTransition: Sendable, Hashable {
    /// This call ended the exam; `outbox` is its leased queue message.
    case ended(ExamPlan, outbox: OutboxEntry)
    /// The exam had ended before (by an earlier or a concurrent call).
    case alreadyCompleted(ExamPlan)
}

/// A queue message waiting in the DB to be published (transactional outbox): an `exam_end`
/// for `queue:exam_end` or an exam-day event for `queue:exam_events` (the row's `topic`).
public struct OutboxEntry: Sendable, Hashable {
    public enum Content: Sendable, Hashable {
        case examEnd(ExamEndQueueMessage)
        case event(ExamEvent)
    }

    public var id: Int64
    public var examId: String
    public var content: Content

    public init(id: Int64, examId: String, message: ExamEndQueueMessage) {
        self.init(id: id, examId: examId, content: .examEnd(message))
    }

    public init(id: Int64, examId: String, content: Content) {
        self.id = id
        self.examId = examId
        self.content = content
    }

    /// The `exam_end` message, for an entry of `queue:exam_end`.
    public var message: ExamEndQueueMessage? {
        if case .examEnd(let message) = content { return message }
        return nil
    }

    /// The row's topic: the stream it is published to.
    public var topic: String {
        switch content {
        case .examEnd: QueueStream.examEnd
        case .event: QueueStream.events
        }
    }

    /// The payload published.
    public var payload: String {
        switch content {
        case .examEnd(let message): message.json
        case .event(let event): event.json
        }
    }

    /// Reads a stored row; throws for a payload that is not its topic's.
    public init(id: Int64, examId: String, topic: String, payload: String) throws {
        let content: Content =
            topic == QueueStream.events ? .event(try ExamEvent(json: payload)) : .examEnd(try ExamEndQueueMessage(json: payload))
        self.init(id: id, examId: examId, content: content)
    }
}

extension AuditStore {
    /// An exam's whole audit log, oldest first (the export, tools and tests; the API's list
    /// gives the latest rows).
    public func auditLog(examId: String) async throws -> [AuditEntry] {
        try await auditLog(examId: examId, latest: nil)
    }
}

extension ExamPlanStore {
    /// Every plan, newest first (tools and tests; the API pages them).
    public func exams() async throws -> [ExamPlan] {
        try await exams(after: nil, limit: Int(Int32.max))
    }
}
