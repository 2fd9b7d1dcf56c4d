/// The life of an exam plan: `scheduled` → `in_progress` → `completed` (final).
public enum ExamStatus: String, Sendable, Codable, CaseIterable {
    case scheduled
    case inProgress = "in_progress"
    case completed

    /// The position in the life of an exam: a later state has a higher rank.
    public var rank: Int { Self.allCases.firstIndex(of: self)! }

    /// Whether an exam in this state may move to `next`.
    public func canMove(to next: ExamStatus) -> Bool {
        switch (self, next) {
        case (.scheduled, .inProgress), (.inProgress, .completed): true
        default: false
        }
    }
}

/// The life of a candidate: `registered` → `in_progress` → `completed`.
public enum CandidateStatus: String, Sendable, Codable, CaseIterable {
    case registered
    case inProgress = "in_progress"
    case completed

    /// The position in the life of a candidate: a later state has a higher rank.
    public var rank: Int { Self.allCases.firstIndex(of: self)! }

    /// Whether a candidate in this state may move to `next`. Ending an exam completes
    /// candidates that never started, so `registered` → `completed` is allowed too.
    public func canMove(to next: CandidateStatus) -> Bool {
        switch (self, next) {
        case (.registered, .inProgress), (.inProgress, .completed), (.registered, .completed): true
        default: false
        }
    }

    /// The status a candidate takes when its exam moves to `examStatus`.
    public static func following(_ examStatus: ExamStatus) -> CandidateStatus {
        switch examStatus {
        case .scheduled: .registered
        case .inProgress: .inProgress
        case .completed: .completed
        }
    }
}

/// Who a browser session belongs to.
public enum SessionRole: String, Sendable, Codable, CaseIterable {
    case candidate
    case proctor
}
