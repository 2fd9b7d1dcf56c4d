import ExamBellCore
import ExamBellRuntime
import Hummingbird

/// The JSON bodies the API answers with.
package struct ExamView: Codable, Sendable {
    package struct Counts: Codable, Sendable {
        package var total: Int
        package var registered: Int
        package var inProgress: Int
        package var completed: Int

        package enum CodingKeys: String, CodingKey {
            case total, registered, completed
            case inProgress = "in_progress"
        }
    }

    package struct Connected: Codable, Sendable {
        package var candidates: Int
        package var proctors: Int
    }

    package var examId: String
    package var title: String
    package var status: String
    package var createdAt: String
    package var startDatetime: String?
    package var scheduledEndDatetime: String?
    package var endDatetime: String?
    package var endedBy: String?
    package var endReason: String?
    package var candidates: Counts
    package var connected: Connected
    package var acknowledged: Int
    package var choiceItems: Int
    package var shortItems: Int
}

/// One page of exams, newest first; `next` is the `after` of the next page, nil on the last.
package struct ExamListView: Codable, Sendable {
    package var exams: [ExamView]
    package var next: String?
}

package struct RegistrationView: Codable, Sendable {
    package var examId: String
    package var added: Int
    package var existing: Int
}

package struct EndView: Codable, Sendable {
    package var examId: String
    package var status: String
    package var endDatetime: String
    package var result: String
}

package struct SessionsView: Codable, Sendable {
    package struct Session: Codable, Sendable {
        package var id: String
        package var token: String
        package var socketUrl: String
        package var pageUrl: String
    }

    package var sessions: [Session]
}

package struct SessionInfoView: Codable, Sendable {
    package var id: String
    package var name: String
    package var role: String
    package var examId: String
    package var title: String
    package var status: String
    package var startDatetime: String?
    package var scheduledEndDatetime: String?
    package var endDatetime: String?
    package var socketUrl: String
    package var choiceItems: Int
    package var shortItems: Int
    /// A candidate's own state: ended alone (handed in, or its own end passed) before the exam.
    package var candidateStatus: String?
    /// The server's clock when it answered, in milliseconds since 1970: pages show time from
    /// it, not from the device's clock.
    package var serverTimeMs: Int64
}

package struct AnswersView: Codable, Sendable {
    package var examId: String
    package var status: String
    package var endDatetime: String?
    package var answers: [String: String]
}

package struct AnswerSaveView: Codable, Sendable {
    package var saved: Int
    package var savedAt: String
    /// True when the save came after the end, within the grace window.
    package var late: Bool
}

package struct TimeChangeView: Codable, Sendable {
    package struct Entry: Codable, Sendable {
        package var candidateId: String
        package var scheduledEndDatetime: String
    }

    package var examId: String
    package var scheduledEndDatetime: String
    package var candidates: [Entry]
    /// With `preview`: every running candidate whose planned end would change, and nothing changed.
    package var affected: [Entry]?
    package var preview: Bool?
}

package struct CandidateEndView: Codable, Sendable {
    package var examId: String
    package var candidateId: String
    package var status: String
    package var endDatetime: String
    package var result: String
}

package struct AnnouncementIdView: Codable, Sendable {
    package var announcementId: String
}

/// The latest announcements (`Budgets.latestAnnouncements`), oldest first, and how many
/// there are in all.
package struct AnnouncementsView: Codable, Sendable {
    package var announcements: [AnnouncementView]
    package var total: Int
}

/// One page of late submissions; `next` is the `after` of the next page, nil on the last.
package struct LateSubmissionsView: Codable, Sendable {
    package var lateSubmissions: [LateSubmission]
    package var next: String?
}

/// A list call's page: `?limit=` rows (1 to `Budgets.maxListRows`; default
/// `defaultListRows`) after the row `?after=` names (the previous page's `next`).
package struct ListPage: Sendable {
    package var limit: Int
    package var after: String?

    /// `after` as a row number (late submissions); 400 when it is none.
    package func afterNumber() throws -> Int64? {
        guard let after else { return nil }
        guard let number = Int64(after), number >= 0 else {
            throw ExamBellError.badRequest(code: "invalid_after", "after must be the id of a row of the previous page.")
        }
        return number
    }

    package init(_ request: Request, budgets: Budgets) throws {
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

package struct ProctorListView: Codable, Sendable {
    package struct Entry: Codable, Sendable {
        package var proctorId: String
        package var name: String
    }

    package var proctors: [Entry]
}

package struct AuditView: Codable, Sendable {
    package var entries: [AuditEntry]
    /// The hash of the chain's last row: written down at the end of the day, it pins the chain.
    package var head: String?
}

// MARK: Request bodies

package struct CreateExamBody: Decodable {
    package var examId: String
    package var title: String
    package var choiceItems: Int?
    package var shortItems: Int?
    package var scheduledEndDatetime: String?
}

package struct SaveAnswersBody: Decodable {
    package var answers: [String: String]
    /// The page's last save after its lock (the `saved` step).
    package var final: Bool?
}

package struct CandidatesBody: Decodable {
    package struct Person: Decodable {
        package var candidateId: String
        package var name: String
    }
    package var candidates: [Person]
}

package struct ProctorsBody: Decodable {
    package struct Person: Decodable {
        package var proctorId: String
        package var name: String
    }
    package var proctors: [Person]
}

package struct TimeChangeBody: Decodable {
    package var scheduledEndDatetime: String?
    package var addMinutes: Int?
    package var candidateIds: [String]?
    package var reason: String?
    package var preview: Bool?
}

package struct LateSubmissionDecisionBody: Decodable {
    package var decision: String
    package var reason: String?
}

package struct ReasonBody: Decodable {
    package var reason: String?
}

package struct AnnouncementBody: Decodable {
    package var message: String
    package var candidateIds: [String]?
}

package struct SessionsBody: Decodable {
    package var role: SessionRole
    package var ids: [String]
}
