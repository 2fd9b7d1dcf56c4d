/// The queue entry of seed §3.2, carried in the `payload` field of `queue:exam_end`:
///
/// `{"type":"exam_end","examId":"e123","status":"completed","timestamp":"2024-01-16T18:00:00Z"}`
public struct ExamEndQueueMessage: Sendable, Hashable {
    /// The ended exam.
    public var examId: String
    /// The exam's one end time.
    public var timestamp: Timestamp

    public init(examId: String, timestamp: Timestamp) {
        self.examId = examId
        self.timestamp = timestamp
    }

    /// The exact payload text.
    public var json: String {
        JSONText.object([
            "type": JSONText.string("exam_end"),
            "examId": JSONText.string(examId),
            "status": JSONText.string("completed"),
            "timestamp": JSONText.string(timestamp.iso8601),
        ])
    }

    /// Reads a payload; throws when it is not an `exam_end` entry of this shape.
    public init(json: String) throws {
        struct Wire: Decodable {
            var type: String
            var examId: String
            var status: String
            var timestamp: Timestamp
        }
        let wire = try JSONText.decode(Wire.self, from: json)
        guard wire.type == "exam_end", wire.status == "completed", Identifier.isValid(wire.examId) else {
            throw ExamBellError.badRequest(code: "invalid_message", "not an exam_end queue entry")
        }
        self.init(examId: wire.examId, timestamp: wire.timestamp)
    }
}
