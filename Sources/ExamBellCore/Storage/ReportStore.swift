/// A recorded move of planned ends (`changeTime`), as the exam report reads it.
public struct TimeChangeRecord: Sendable, Hashable {
    public var at: Timestamp
    public var actor: String
    public var reason: String?
    /// For everyone running at `at`, or only for the candidates in `ends`.
    public var everyone: Bool
    /// The exam's planned end after it.
    public var scheduledEndDatetime: Timestamp
    /// Candidates' own planned ends it set (the listed ones; for everyone, accommodations moved).
    public var ends: [String: Timestamp]

    public init(
        at: Timestamp, actor: String, reason: String?, everyone: Bool, scheduledEndDatetime: Timestamp, ends: [String: Timestamp]
    ) {
        self.at = at
        self.actor = actor
        self.reason = reason
        self.everyone = everyone
        self.scheduledEndDatetime = scheduledEndDatetime
        self.ends = ends
    }

    /// The candidate's planned end after this change, when the change applied to it: listed,
    /// or (for everyone) still running at its time.
    public func end(for candidate: Candidate, in plan: ExamPlan) -> Timestamp? {
        if let own = ends[candidate.candidateId] { return own }
        guard everyone else { return nil }
        if let ended = candidate.endTime(in: plan), ended <= at { return nil }
        return scheduledEndDatetime
    }
}

/// What the exam report reads from the DB besides the candidates.
public struct ReportFacts: Sendable, Hashable {
    /// Each candidate's latest saved answer, by candidate id.
    public var lastSavedAt: [String: Timestamp]
    /// How candidates that ended alone ended (`CandidateEndCause`), by candidate id.
    public var endedBy: [String: String]
    /// The exam's time changes, oldest first.
    public var timeChanges: [TimeChangeRecord]

    public init(lastSavedAt: [String: Timestamp], endedBy: [String: String], timeChanges: [TimeChangeRecord]) {
        self.lastSavedAt = lastSavedAt
        self.endedBy = endedBy
        self.timeChanges = timeChanges
    }
}

/// The DB's role of the exam report.
public protocol ReportStore: Sendable {
    /// The report's facts of an exam; 404 for an unknown exam.
    func reportFacts(examId: String) async throws -> ReportFacts
}
