/// The value of Redis key `exam_plan:{plan_id}`:
/// `{"status":"completed","end_datetime":"2024-01-16T18:00:00Z"}`.
public struct PlanStateValue: Sendable, Hashable {
    public var status: ExamStatus
    public var endDatetime: Timestamp?

    public init(status: ExamStatus, endDatetime: Timestamp?) {
        self.status = status
        self.endDatetime = endDatetime
    }

    /// The value that mirrors a plan of the DB.
    public init(_ plan: ExamPlan) {
        self.init(status: plan.status, endDatetime: plan.endDatetime)
    }

    /// The key of plan `examId`.
    public static func key(_ examId: String) -> String { "exam_plan:\(examId)" }

    /// The exact JSON text.
    public var json: String {
        JSONText.object([
            "status": JSONText.string(status.rawValue),
            "end_datetime": JSONText.optional(endDatetime?.iso8601),
        ])
    }

    /// Reads a stored value; nil when it is malformed (treated as drift and repaired).
    public init?(json: String) {
        struct Wire: Decodable {
            var status: ExamStatus
            var end_datetime: Timestamp?
        }
        guard let wire = try? JSONText.decode(Wire.self, from: json) else { return nil }
        self.init(status: wire.status, endDatetime: wire.end_datetime)
    }
}

/// The value of Redis key `exam_candidate:{candidate_id}:status`:
/// `{"status":"completed","last_active_time":"2024-01-16T18:00:00Z"}`.
public struct CandidateStateValue: Sendable, Hashable {
    public var status: CandidateStatus
    public var lastActiveTime: Timestamp?

    public init(status: CandidateStatus, lastActiveTime: Timestamp?) {
        self.status = status
        self.lastActiveTime = lastActiveTime
    }

    /// The value that mirrors a candidate of the DB.
    public init(_ candidate: Candidate) {
        self.init(status: candidate.status, lastActiveTime: candidate.lastActiveTime)
    }

    /// The key of candidate `candidateId`.
    public static func key(_ candidateId: String) -> String { "exam_candidate:\(candidateId):status" }

    /// The exact JSON text.
    public var json: String {
        JSONText.object([
            "status": JSONText.string(status.rawValue),
            "last_active_time": JSONText.optional(lastActiveTime?.iso8601),
        ])
    }

    /// Reads a stored value; nil when it is malformed.
    public init?(json: String) {
        struct Wire: Decodable {
            var status: CandidateStatus
            var last_active_time: Timestamp?
        }
        guard let wire = try? JSONText.decode(Wire.self, from: json) else { return nil }
        self.init(status: wire.status, lastActiveTime: wire.last_active_time)
    }
}
