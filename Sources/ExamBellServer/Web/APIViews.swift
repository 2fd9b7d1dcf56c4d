import ExamBellCore
import Hummingbird

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

/// One page of exams, newest first; `next` is the `after` of the next page, nil on the last.
struct ExamListView: Codable, Sendable {
    var exams: [ExamView]
    var next: String?
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
    /// A candidate's own state: ended alone (handed in, or its own end passed) before the exam.
    var candidateStatus: String?
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
        /// The candidate's planned end (its own, else the exam's).
        var scheduledEndDatetime: String?
        /// Whether its page acknowledged that planned end (after a time change).
        var hasNewTime: Bool?
        /// The end's receipts: told, locked, saved (UTC times, or null).
        var told: String?
        var locked: String?
        var saved: String?
        var savedItems: Int?
        /// The server's clock less the page's device clock (ms), reported with its lock.
        var clockOffsetMs: Int?
        /// The announcements it has seen (dismissed).
        var announcementsSeen: [String]
    }

    var type = "roster"
    var examId: String
    var status: String
    var endDatetime: String?
    var itemCount: Int
    var candidates: [Entry]
    var proctorsConnected: Int
    var scheduledEndDatetime: String?
    /// How many candidates reached each step of the end.
    var delivery: DeliveryView.Counts
    /// The exam's announcements, oldest first, each with how many saw it.
    var announcements: [AnnouncementView]
}

struct AnnouncementView: Codable, Sendable {
    var announcementId: String
    var message: String
    var timestamp: String
    var candidateIds: [String]?
    /// How many candidates saw it (operator and proctor views only).
    var seen: Int?
}

struct DeliveryView: Codable, Sendable {
    struct Counts: Codable, Sendable {
        var candidates: Int
        var told: Int
        var locked: Int
        var saved: Int
    }

    struct Entry: Codable, Sendable {
        var candidateId: String
        var told: String?
        var locked: String?
        var saved: String?
        var savedItems: Int?
        /// The server's clock less the page's device clock (ms), reported with its lock.
        var clockOffsetMs: Int?

        /// A step not reached is `null` (DESIGN), not a missing key.
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(candidateId, forKey: .candidateId)
            try container.encode(told, forKey: .told)
            try container.encode(locked, forKey: .locked)
            try container.encode(saved, forKey: .saved)
            try container.encode(savedItems, forKey: .savedItems)
            try container.encode(clockOffsetMs, forKey: .clockOffsetMs)
        }
    }

    var examId: String
    var counts: Counts
    var candidates: [Entry]
    /// Who is missing at each step (candidates that ended only).
    var missing: [String: [String]]
}

struct TimeChangeView: Codable, Sendable {
    struct Entry: Codable, Sendable {
        var candidateId: String
        var scheduledEndDatetime: String
    }

    var examId: String
    var scheduledEndDatetime: String
    var candidates: [Entry]
    /// With `preview`: every running candidate whose planned end would change, and nothing changed.
    var affected: [Entry]?
    var preview: Bool?
}

struct CandidateEndView: Codable, Sendable {
    var examId: String
    var candidateId: String
    var status: String
    var endDatetime: String
    var result: String
}

struct AnnouncementIdView: Codable, Sendable {
    var announcementId: String
}

/// The latest announcements (`Budgets.latestAnnouncements`), oldest first, and how many
/// there are in all.
struct AnnouncementsView: Codable, Sendable {
    var announcements: [AnnouncementView]
    var total: Int
}

/// One page of late submissions; `next` is the `after` of the next page, nil on the last.
struct LateSubmissionsView: Codable, Sendable {
    var lateSubmissions: [LateSubmission]
    var next: String?
}

/// A list call's page: `?limit=` rows (1 to `Budgets.maxListRows`; default
/// `defaultListRows`) after the row `?after=` names (the previous page's `next`).
struct ListPage: Sendable {
    var limit: Int
    var after: String?

    /// `after` as a row number (late submissions); 400 when it is none.
    func afterNumber() throws -> Int64? {
        guard let after else { return nil }
        guard let number = Int64(after), number >= 0 else {
            throw ExamBellError.badRequest(code: "invalid_after", "after must be the id of a row of the previous page.")
        }
        return number
    }

    init(_ request: Request, budgets: Budgets) throws {
        let query = request.uri.queryParameters
        if let text = query.get("limit") {
            guard let limit = Int(text), (1...budgets.maxListRows).contains(limit) else {
                throw ExamBellError.badRequest(code: "invalid_limit", "limit must be 1 to \(budgets.maxListRows) (rows a list call returns).")
            }
            self.limit = limit
        } else {
            limit = budgets.defaultListRows
        }
        after = query.get("after")
    }
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
    /// The hash of the chain's last row: written down at the end of the day, it pins the chain.
    var head: String?
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
    /// The page's last save after its lock (the `saved` step).
    var final: Bool?
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

struct TimeChangeBody: Decodable {
    var scheduledEndDatetime: String?
    var addMinutes: Int?
    var candidateIds: [String]?
    var reason: String?
    var preview: Bool?
}

struct LateSubmissionDecisionBody: Decodable {
    var decision: String
    var reason: String?
}

struct ReasonBody: Decodable {
    var reason: String?
}

struct AnnouncementBody: Decodable {
    var message: String
    var candidateIds: [String]?
}

struct SessionsBody: Decodable {
    var role: SessionRole
    var ids: [String]
}
