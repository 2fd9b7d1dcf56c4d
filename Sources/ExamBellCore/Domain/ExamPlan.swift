/// One exam plan as the DB holds it: the source of truth.
///
/// One name for one thing: DESIGN makes the plan's id the `examId` of the messages and the
/// API, so Swift code says `examId` everywhere; `plan_id` appears only where DESIGN fixes it,
/// in the DB's columns and the Redis keys (`exam_plan:{plan_id}`).
public struct ExamPlan: Sendable, Hashable, Codable {
    public var examId: String
    public var title: String
    public var status: ExamStatus
    public var createdAt: Timestamp
    public var startDatetime: Timestamp?
    /// When the operator planned the exam to end (informational until scheduled ends exist).
    public var scheduledEndDatetime: Timestamp?
    /// The one end time of the exam, set when it became `completed`.
    public var endDatetime: Timestamp?
    /// Who ended it (the admin actor, or `scheduler`).
    public var endedBy: String?
    public var endReason: String?
    /// The answer sheet's items.
    public var items: ExamItems

    public init(
        examId: String, title: String, status: ExamStatus, createdAt: Timestamp,
        startDatetime: Timestamp? = nil, scheduledEndDatetime: Timestamp? = nil,
        endDatetime: Timestamp? = nil, endedBy: String? = nil, endReason: String? = nil,
        items: ExamItems = .standard
    ) {
        self.examId = examId
        self.title = title
        self.status = status
        self.createdAt = createdAt
        self.startDatetime = startDatetime
        self.scheduledEndDatetime = scheduledEndDatetime
        self.endDatetime = endDatetime
        self.endedBy = endedBy
        self.endReason = endReason
        self.items = items
    }
}

/// A candidate (수험자) of one exam.
public struct Candidate: Sendable, Hashable, Codable {
    public var candidateId: String
    public var examId: String
    public var name: String
    public var status: CandidateStatus
    public var lastActiveTime: Timestamp?
    /// When the candidate's browser first acknowledged the end (`acknowledged_at`); the end
    /// time itself stays in `lastActiveTime`.
    public var acknowledgedAt: Timestamp?
    /// The candidate's own planned end (an accommodation); nil: the exam's.
    public var scheduledEndDatetime: Timestamp?
    /// When the candidate's page reported every control disabled after its end.
    public var lockedAt: Timestamp?
    /// When the page's last save after the lock reached the server, and how many items it held.
    public var finalSavedAt: Timestamp?
    public var finalSavedItems: Int?
    /// How far the page's device clock was from the server's when it locked (ms; the server's
    /// clock less the device's).
    public var clockOffsetMs: Int?

    public init(
        candidateId: String, examId: String, name: String, status: CandidateStatus,
        lastActiveTime: Timestamp? = nil, acknowledgedAt: Timestamp? = nil, scheduledEndDatetime: Timestamp? = nil,
        lockedAt: Timestamp? = nil, finalSavedAt: Timestamp? = nil, finalSavedItems: Int? = nil, clockOffsetMs: Int? = nil
    ) {
        self.candidateId = candidateId
        self.examId = examId
        self.name = name
        self.status = status
        self.lastActiveTime = lastActiveTime
        self.acknowledgedAt = acknowledgedAt
        self.scheduledEndDatetime = scheduledEndDatetime
        self.lockedAt = lockedAt
        self.finalSavedAt = finalSavedAt
        self.finalSavedItems = finalSavedItems
        self.clockOffsetMs = clockOffsetMs
    }

    /// When this candidate is planned to end: its own time, else the exam's.
    public func plannedEnd(in plan: ExamPlan) -> Timestamp? {
        scheduledEndDatetime ?? plan.scheduledEndDatetime
    }

    /// When this candidate's answers stopped being taken: its own end when it ended alone,
    /// else the exam's; nil while it runs.
    public func endTime(in plan: ExamPlan) -> Timestamp? {
        if status == .completed, let time = lastActiveTime { return min(time, plan.endDatetime ?? time) }
        return plan.status == .completed ? plan.endDatetime : nil
    }
}

/// A proctor (감독관) of one exam.
public struct Proctor: Sendable, Hashable, Codable {
    public var proctorId: String
    public var examId: String
    public var name: String

    public init(proctorId: String, examId: String, name: String) {
        self.proctorId = proctorId
        self.examId = examId
        self.name = name
    }
}

/// A person to register: an id and a display name.
public struct Registrant: Sendable, Hashable, Codable {
    public var id: String
    public var name: String

    public init(id: String, name: String) {
        self.id = id
        self.name = name
    }
}

/// What a bulk registration did.
public struct RegistrationResult: Sendable, Hashable, Codable {
    /// Ids newly added to the exam.
    public var added: Int
    /// Ids that were already registered to this exam (their names are updated).
    public var existing: Int

    public init(added: Int, existing: Int) {
        self.added = added
        self.existing = existing
    }
}

/// One row of the audit log: who did what to which exam, when, and why.
public struct AuditEntry: Sendable, Hashable, Codable {
    public var examId: String
    public var actor: String
    public var action: String
    public var reason: String?
    public var detail: String?
    public var at: Timestamp
    /// The row's place in the exam's audit chain (DESIGN, "Proof"); set by the store.
    public var seq: Int?
    public var prevHash: String?
    public var hash: String?

    public init(examId: String, actor: String, action: String, reason: String?, detail: String?, at: Timestamp) {
        self.examId = examId
        self.actor = actor
        self.action = action
        self.reason = reason
        self.detail = detail
        self.at = at
    }
}
