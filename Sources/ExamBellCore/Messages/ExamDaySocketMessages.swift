/// Socket messages of the exam day (DESIGN "Exam day"), server → browser, beside `exam_end`:
///
/// `{"type":"exam_time","examId":"e123","scheduledEndDatetime":"2024-01-16T18:10:00Z"}`
public struct ExamTimeSocketMessage: Sendable, Hashable {
    public var examId: String
    public var scheduledEndDatetime: Timestamp

    public init(examId: String, scheduledEndDatetime: Timestamp) {
        self.examId = examId
        self.scheduledEndDatetime = scheduledEndDatetime
    }

    public var json: String {
        JSONText.object([
            "type": JSONText.string("exam_time"),
            "examId": JSONText.string(examId),
            "scheduledEndDatetime": JSONText.string(scheduledEndDatetime.iso8601),
        ])
    }
}

/// `{"type":"announcement","examId":"e123","announcementId":"a1","message":"…","timestamp":"…"}`
public struct AnnouncementSocketMessage: Sendable, Hashable {
    public var examId: String
    public var announcementId: String
    public var message: String
    public var timestamp: Timestamp

    public init(_ event: AnnouncementEvent) {
        self.examId = event.examId
        self.announcementId = event.announcementId
        self.message = event.message
        self.timestamp = event.timestamp
    }

    public var json: String {
        JSONText.object([
            "type": JSONText.string("announcement"),
            "examId": JSONText.string(examId),
            "announcementId": JSONText.string(announcementId),
            "message": JSONText.string(message),
            "timestamp": JSONText.string(timestamp.iso8601),
        ])
    }
}

/// What a browser sends the socket server:
/// `{"type":"ack","examId"}` (told of `exam_end`), `{"type":"locked","examId"}` (every
/// control disabled; the SDK adds `"clockOffsetMs"` and `"rttMs"`: how far the device's
/// clock is from the server's), `{"type":"ack","examId","of":"exam_time"}` and
/// `{"type":"ack","examId","of":"announcement","announcementId"}`.
public enum BrowserMessage: Sendable, Hashable {
    case endAcknowledged
    /// `clockOffsetMs`: the server's clock less the device's, as the page estimated it.
    case locked(clockOffsetMs: Int?)
    case timeAcknowledged
    case announcementAcknowledged(announcementId: String)

    /// Reads a browser frame of exam `examId`; nil for anything else (another exam included).
    public init?(json: String, examId: String) {
        struct Wire: Decodable {
            var type: String
            var examId: String
            var of: String?
            var announcementId: String?
            var clockOffsetMs: Double?
        }
        guard let wire = try? JSONText.decode(Wire.self, from: json), wire.examId == examId else { return nil }
        switch (wire.type, wire.of) {
        case ("ack", nil), ("ack", "exam_end"): self = .endAcknowledged
        case ("locked", nil):
            // A year either way is a device's clock, not a measurement gone wrong.
            let offset = wire.clockOffsetMs.flatMap { abs($0) <= 366 * 86_400_000 ? Int($0.rounded()) : nil }
            self = .locked(clockOffsetMs: offset)
        case ("ack", "exam_time"): self = .timeAcknowledged
        case ("ack", "announcement"):
            guard let id = wire.announcementId, Identifier.isValid(id) else { return nil }
            self = .announcementAcknowledged(announcementId: id)
        default: return nil
        }
    }
}
