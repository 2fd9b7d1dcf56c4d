/// The entries of `queue:exam_events`: what happens on an exam day besides the exam's end,
/// carried from web nodes to socket nodes beside `queue:exam_end` (whose entries keep their
/// exact shape). Each entry's `payload` is one of:
///
/// ```
/// {"type":"exam_time","examId":"e1","scheduledEndDatetime":"…","everyone":true,"candidates":{"c7":"…"}}
/// {"type":"candidate_end","examId":"e1","candidateIds":["c7"],"timestamp":"…"}
/// {"type":"announcement","examId":"e1","announcementId":"a3","message":"…","timestamp":"…","candidateIds":null}
/// ```
public enum ExamEvent: Sendable, Hashable {
    /// The planned end moved, for everyone or for listed candidates.
    case time(ExamTimeEvent)
    /// Candidates ended alone (their own end passed, an operator ended them, they handed in).
    case candidateEnd(CandidateEndEvent)
    /// A notice for every candidate of the exam, or for listed ones.
    case announcement(AnnouncementEvent)

    public var examId: String {
        switch self {
        case .time(let event): event.examId
        case .candidateEnd(let event): event.examId
        case .announcement(let event): event.examId
        }
    }

    /// The exact payload text.
    public var json: String {
        switch self {
        case .time(let event):
            JSONText.object([
                "type": JSONText.string("exam_time"),
                "examId": JSONText.string(event.examId),
                "scheduledEndDatetime": JSONText.string(event.scheduledEndDatetime.iso8601),
                "everyone": event.everyone ? "true" : "false",
                "candidates": "{"
                    + event.candidates.sorted { $0.key < $1.key }
                    .map { "\(JSONText.string($0.key)):\(JSONText.string($0.value.iso8601))" }.joined(separator: ",") + "}",
            ])
        case .candidateEnd(let event):
            JSONText.object([
                "type": JSONText.string("candidate_end"),
                "examId": JSONText.string(event.examId),
                "candidateIds": JSONText.array(event.candidateIds),
                "timestamp": JSONText.string(event.timestamp.iso8601),
            ])
        case .announcement(let event):
            JSONText.object([
                "type": JSONText.string("announcement"),
                "examId": JSONText.string(event.examId),
                "announcementId": JSONText.string(event.announcementId),
                "message": JSONText.string(event.message),
                "timestamp": JSONText.string(event.timestamp.iso8601),
                "candidateIds": event.candidateIds.map(JSONText.array) ?? "null",
            ])
        }
    }

    /// Reads a payload; throws when it is none of the shapes above.
    public init(json: String) throws {
        struct Wire: Decodable {
            var type: String
            var examId: String
            var scheduledEndDatetime: Timestamp?
            var everyone: Bool?
            var candidates: [String: Timestamp]?
            var candidateIds: [String]?
            var timestamp: Timestamp?
            var announcementId: String?
            var message: String?
        }
        let wire = try JSONText.decode(Wire.self, from: json)
        guard Identifier.isValid(wire.examId) else { throw Self.invalid }
        switch wire.type {
        case "exam_time":
            guard let end = wire.scheduledEndDatetime else { throw Self.invalid }
            self = .time(
                ExamTimeEvent(
                    examId: wire.examId, scheduledEndDatetime: end, everyone: wire.everyone ?? true, candidates: wire.candidates ?? [:]
                )
            )
        case "candidate_end":
            guard let ids = wire.candidateIds, let time = wire.timestamp else { throw Self.invalid }
            self = .candidateEnd(CandidateEndEvent(examId: wire.examId, candidateIds: ids, timestamp: time))
        case "announcement":
            guard let id = wire.announcementId, let message = wire.message, let time = wire.timestamp else { throw Self.invalid }
            self = .announcement(
                AnnouncementEvent(
                    examId: wire.examId, announcementId: id, message: message, timestamp: time, candidateIds: wire.candidateIds
                )
            )
        default:
            throw Self.invalid
        }
    }

    private static var invalid: ExamBellError { .badRequest(code: "invalid_message", "not an exam_events queue entry") }
}

/// The planned end of a running exam moved.
public struct ExamTimeEvent: Sendable, Hashable {
    public var examId: String
    /// The exam's planned end after the change.
    public var scheduledEndDatetime: Timestamp
    /// True when the change is for everyone; false when only `candidates` are concerned.
    public var everyone: Bool
    /// Candidates with an end of their own, after the change: the listed ones, or (for a
    /// change for everyone) the accommodated ones, moved by the same amount.
    public var candidates: [String: Timestamp]

    public init(examId: String, scheduledEndDatetime: Timestamp, everyone: Bool, candidates: [String: Timestamp]) {
        self.examId = examId
        self.scheduledEndDatetime = scheduledEndDatetime
        self.everyone = everyone
        self.candidates = candidates
    }

    /// The new end of candidate `candidateId`, or nil when the change does not concern it.
    public func end(for candidateId: String) -> Timestamp? {
        candidates[candidateId] ?? (everyone ? scheduledEndDatetime : nil)
    }
}

/// Candidates who ended alone at `timestamp` (their `last_active_time`).
public struct CandidateEndEvent: Sendable, Hashable {
    public var examId: String
    public var candidateIds: [String]
    public var timestamp: Timestamp

    public init(examId: String, candidateIds: [String], timestamp: Timestamp) {
        self.examId = examId
        self.candidateIds = candidateIds
        self.timestamp = timestamp
    }
}

/// A notice to the candidates of an exam (all of them when `candidateIds` is nil).
public struct AnnouncementEvent: Sendable, Hashable {
    public var examId: String
    public var announcementId: String
    public var message: String
    public var timestamp: Timestamp
    public var candidateIds: [String]?

    public init(examId: String, announcementId: String, message: String, timestamp: Timestamp, candidateIds: [String]?) {
        self.examId = examId
        self.announcementId = announcementId
        self.message = message
        self.timestamp = timestamp
        self.candidateIds = candidateIds
    }

    /// Whether candidate `candidateId` is meant.
    public func concerns(_ candidateId: String) -> Bool {
        candidateIds?.contains(candidateId) ?? true
    }
}
