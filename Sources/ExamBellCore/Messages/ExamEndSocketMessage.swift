/// The socket message of seed §3.3, one WebSocket text frame to every browser of the exam:
///
/// `{"type":"exam_end","examId":"e123","message":"시험이 종료되었습니다.","timestamp":"2024-01-16T18:00:00Z"}`
public struct ExamEndSocketMessage: Sendable, Hashable {
    /// The notice every candidate and proctor reads.
    public static let notice = "시험이 종료되었습니다."

    public var examId: String
    public var timestamp: Timestamp

    public init(examId: String, timestamp: Timestamp) {
        self.examId = examId
        self.timestamp = timestamp
    }

    /// The message a queue entry turns into: same exam, same end time.
    public init(_ queued: ExamEndQueueMessage) {
        self.init(examId: queued.examId, timestamp: queued.timestamp)
    }

    /// The exact frame text; encode it once per broadcast.
    public var json: String {
        JSONText.object([
            "type": JSONText.string("exam_end"),
            "examId": JSONText.string(examId),
            "message": JSONText.string(Self.notice),
            "timestamp": JSONText.string(timestamp.iso8601),
        ])
    }
}
