/// The roster and delivery views: what proctors see pushed and the API answers with.

package struct RosterView: Codable, Sendable {
    package struct Entry: Codable, Sendable {
        package var candidateId: String
        package var name: String
        package var status: String
        package var lastActiveTime: String?
        package var connected: Bool
        package var acknowledged: Bool
        package var answered: Int
        /// The candidate's planned end (its own, else the exam's).
        package var scheduledEndDatetime: String?
        /// Whether its page acknowledged that planned end (after a time change).
        package var hasNewTime: Bool?
        /// The end's receipts: told, locked, saved (UTC times, or null).
        package var told: String?
        package var locked: String?
        package var saved: String?
        package var savedItems: Int?
        /// The server's clock less the page's device clock (ms), reported with its lock.
        package var clockOffsetMs: Int?
        /// The announcements it has seen (dismissed).
        package var announcementsSeen: [String]
    }

    package var type = "roster"
    package var examId: String
    package var status: String
    package var endDatetime: String?
    package var itemCount: Int
    package var candidates: [Entry]
    package var proctorsConnected: Int
    package var scheduledEndDatetime: String?
    /// How many candidates reached each step of the end.
    package var delivery: DeliveryView.Counts
    /// The exam's announcements, oldest first, each with how many saw it.
    package var announcements: [AnnouncementView]
}

package struct AnnouncementView: Codable, Sendable {
    package var announcementId: String
    package var message: String
    package var timestamp: String
    package var candidateIds: [String]?
    /// How many candidates saw it (operator and proctor views only).
    package var seen: Int?

    package init(announcementId: String, message: String, timestamp: String, candidateIds: [String]? = nil, seen: Int? = nil) {
        self.announcementId = announcementId
        self.message = message
        self.timestamp = timestamp
        self.candidateIds = candidateIds
        self.seen = seen
    }
}

package struct DeliveryView: Codable, Sendable {
    package struct Counts: Codable, Sendable {
        package var candidates: Int
        package var told: Int
        package var locked: Int
        package var saved: Int
    }

    package struct Entry: Codable, Sendable {
        package var candidateId: String
        package var told: String?
        package var locked: String?
        package var saved: String?
        package var savedItems: Int?
        /// The server's clock less the page's device clock (ms), reported with its lock.
        package var clockOffsetMs: Int?

        /// A step not reached is `null` (DESIGN), not a missing key.
        package func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(candidateId, forKey: .candidateId)
            try container.encode(told, forKey: .told)
            try container.encode(locked, forKey: .locked)
            try container.encode(saved, forKey: .saved)
            try container.encode(savedItems, forKey: .savedItems)
            try container.encode(clockOffsetMs, forKey: .clockOffsetMs)
        }
    }

    package var examId: String
    package var counts: Counts
    package var candidates: [Entry]
    /// Who is missing at each step (candidates that ended only).
    package var missing: [String: [String]]
}
