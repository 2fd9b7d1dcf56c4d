import ExamBellCore

/// The JSON bodies the API answers with.
struct ExamView: Codable, Sendable {
    struct Counts: Codable, Sendable {
        var total: Int
        var registered: Int
        var inProgress: Int
        var completed: Int

        enum CodingKeys: String, CodingKey {
            case total, registered, completed
            case inProgress = "in_progress"
        }
    }

    struct Connected: Codable, Sendable {
        var candidates: Int
        var proctors: Int
    }

    var examId: String
    var title: String
    var status: String
    var createdAt: String
    var startDatetime: String?
    var scheduledEndDatetime: String?
    var endDatetime: String?
    var endedBy: String?
    var endReason: String?
    var candidates: Counts
    var connected: Connected
    var acknowledged: Int
    var choiceItems: Int
    var shortItems: Int
}

struct ExamListView: Codable, Sendable {
    var exams: [ExamView]
}

struct RegistrationView: Codable, Sendable {
    var examId: String
    var added: Int
    var existing: Int
}

struct EndView: Codable, Sendable {
    var examId: String
    var status: String
    var endDatetime: String
    var result: String
}

struct SessionsView: Codable, Sendable {
    struct Session: Codable, Sendable {
        var id: String
        var token: String
        var socketUrl: String
        var pageUrl: String
    }

    var sessions: [Session]
}

struct SessionInfoView: Codable, Sendable {
    var id: String
    var name: String
    var role: String
    var examId: String
    var title: String
    var status: String
    var startDatetime: String?
    var scheduledEndDatetime: String?
    var endDatetime: String?
    var socketUrl: String
    var choiceItems: Int
    var shortItems: Int
    /// The server's clock when it answered, in milliseconds since 1970: pages show time from
    /// it, not from the device's clock.
    var serverTimeMs: Int64
}

struct AnswersView: Codable, Sendable {
    var examId: String
    var status: String
    var endDatetime: String?
    var answers: [String: String]
}

struct AnswerSaveView: Codable, Sendable {
    var saved: Int
    var savedAt: String
    /// True when the save came after the end, within the grace window.
    var late: Bool
}

struct RosterView: Codable, Sendable {
    struct Entry: Codable, Sendable {
        var candidateId: String
        var name: String
        var status: String
        var lastActiveTime: String?
        var connected: Bool
        var acknowledged: Bool
        var answered: Int
    }

    var type = "roster"
    var examId: String
    var status: String
    var endDatetime: String?
    var itemCount: Int
    var candidates: [Entry]
    var proctorsConnected: Int
}

struct ProctorListView: Codable, Sendable {
    struct Entry: Codable, Sendable {
        var proctorId: String
        var name: String
    }

    var proctors: [Entry]
}

struct AuditView: Codable, Sendable {
    var entries: [AuditEntry]
}

// MARK: Request bodies

struct CreateExamBody: Decodable {
    var examId: String
    var title: String
    var choiceItems: Int?
    var shortItems: Int?
    var scheduledEndDatetime: String?
}

struct SaveAnswersBody: Decodable {
    var answers: [String: String]
}

struct CandidatesBody: Decodable {
    struct Person: Decodable {
        var candidateId: String
        var name: String
    }
    var candidates: [Person]
}

struct ProctorsBody: Decodable {
    struct Person: Decodable {
        var proctorId: String
        var name: String
    }
    var proctors: [Person]
}

struct EndExamBody: Decodable {
    var reason: String?
}

struct SessionsBody: Decodable {
    var role: SessionRole
    var ids: [String]
}
