import Foundation

/// What a platform's backend hears from ExamBell (DESIGN "Platform integration"): one event
/// a change, written to the DB's webhook outbox in the change's own transaction.
public enum WebhookEventType: String, Sendable, Hashable, CaseIterable, Codable {
    case examEnded = "exam.ended"
    case candidateEnded = "candidate.ended"
    case timeChanged = "exam.time_changed"
    case deliveryComplete = "exam.delivery_complete"

    /// The types named in `names`, or 400 `unknown_event_type` naming the first unknown one.
    public static func parse(_ names: [String]) throws(ExamBellError) -> [WebhookEventType] {
        var types: [WebhookEventType] = []
        for name in names {
            guard let type = WebhookEventType(rawValue: name) else {
                throw .badRequest(
                    code: "unknown_event_type",
                    "\"\(name.prefix(64))\" is not an event type; known: \(allCases.map(\.rawValue).joined(separator: ", "))."
                )
            }
            if !types.contains(type) { types.append(type) }
        }
        guard !types.isEmpty else { throw .badRequest(code: "events_required", "events must name at least one event type.") }
        return types
    }
}

/// Why a candidate ended alone (`candidate.ended`'s `endedBy`).
public enum CandidateEndCause: String, Sendable, Hashable {
    /// Its own planned end came (the scheduler).
    case ownTime = "own_time"
    /// An operator or its proctor ended it.
    case byOperator = "operator"
    /// The candidate handed in.
    case handIn = "hand_in"
}

/// One event as it is delivered: `{"eventId","type","createdAt","data"}`, the same bytes on
/// every attempt.
public struct WebhookEvent: Sendable, Hashable {
    public var eventId: String
    public var type: WebhookEventType
    public var examId: String
    public var createdAt: Timestamp
    /// The `data` object, JSON text.
    public var data: String

    public init(eventId: String = WebhookEvent.newId(), type: WebhookEventType, examId: String, createdAt: Timestamp, data: String) {
        self.eventId = eventId
        self.type = type
        self.examId = examId
        self.createdAt = createdAt
        self.data = data
    }

    /// A fresh event id (`evt_` and 32 hex digits).
    public static func newId() -> String {
        "evt_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    }

    /// The request body.
    public var body: String {
        JSONText.object([
            "eventId": JSONText.string(eventId), "type": JSONText.string(type.rawValue), "createdAt": JSONText.string(createdAt.iso8601),
            "data": data,
        ])
    }

    /// `exam.ended`: `{"examId","endDatetime","reason","actor"}`.
    public static func examEnded(examId: String, endDatetime: Timestamp, reason: String?, actor: String) -> WebhookEvent {
        WebhookEvent(
            type: .examEnded, examId: examId, createdAt: endDatetime,
            data: JSONText.object([
                "examId": JSONText.string(examId), "endDatetime": JSONText.string(endDatetime.iso8601),
                "reason": JSONText.optional(reason), "actor": JSONText.string(actor),
            ])
        )
    }

    /// `candidate.ended`: `{"examId","candidateId","endDatetime","endedBy"}`.
    public static func candidateEnded(examId: String, candidateId: String, endDatetime: Timestamp, endedBy: CandidateEndCause) -> WebhookEvent {
        WebhookEvent(
            type: .candidateEnded, examId: examId, createdAt: endDatetime,
            data: JSONText.object([
                "examId": JSONText.string(examId), "candidateId": JSONText.string(candidateId),
                "endDatetime": JSONText.string(endDatetime.iso8601), "endedBy": JSONText.string(endedBy.rawValue),
            ])
        )
    }

    /// `exam.time_changed`: `{"examId","scheduledEndDatetime","candidateIds","reason","actor"}`.
    public static func timeChanged(
        examId: String, scheduledEndDatetime: Timestamp, candidateIds: [String]?, reason: String, actor: String, at: Timestamp
    ) -> WebhookEvent {
        WebhookEvent(
            type: .timeChanged, examId: examId, createdAt: at,
            data: JSONText.object([
                "examId": JSONText.string(examId), "scheduledEndDatetime": JSONText.string(scheduledEndDatetime.iso8601),
                "candidateIds": candidateIds.map(JSONText.array) ?? "null", "reason": JSONText.string(reason),
                "actor": JSONText.string(actor),
            ])
        )
    }

    /// `exam.delivery_complete`: `{"examId","counts":{"candidates","told","locked","saved"},"missing":[…]}`.
    public static func deliveryComplete(
        examId: String, candidates: Int, told: Int, locked: Int, saved: Int, missing: [String], at: Timestamp
    ) -> WebhookEvent {
        WebhookEvent(
            type: .deliveryComplete, examId: examId, createdAt: at,
            data: JSONText.object([
                "examId": JSONText.string(examId),
                "counts": JSONText.object([
                    "candidates": String(candidates), "told": String(told), "locked": String(locked), "saved": String(saved),
                ]),
                "missing": JSONText.array(missing),
            ])
        )
    }
}

/// A registered endpoint, as the API lists it (never its secret).
public struct WebhookEndpoint: Sendable, Hashable {
    public var webhookId: String
    public var url: String
    public var events: [WebhookEventType]
    public var createdAt: Timestamp
    public var createdBy: String

    public init(webhookId: String, url: String, events: [WebhookEventType], createdAt: Timestamp, createdBy: String) {
        self.webhookId = webhookId
        self.url = url
        self.events = events
        self.createdAt = createdAt
        self.createdBy = createdBy
    }
}

/// One event's delivery to one endpoint, as the console shows it.
public struct WebhookDelivery: Sendable, Hashable {
    public var eventId: String
    public var type: WebhookEventType
    public var examId: String
    public var createdAt: Timestamp
    public var attempts: Int
    /// The last attempt's HTTP status; nil before one answered.
    public var lastStatus: Int?
    /// Why the last attempt failed without an HTTP answer (timeout, refused address…).
    public var lastError: String?
    public var deliveredAt: Timestamp?
    /// Set when the retries ran out (or the endpoint was removed) before a 2xx.
    public var gaveUpAt: Timestamp?
    /// When the next attempt is due (milliseconds since the epoch), while pending.
    public var nextAttemptMs: Int64?
    /// The start of the target's last answer (at most 1 KiB).
    public var lastResponse: String?

    public init(
        eventId: String, type: WebhookEventType, examId: String, createdAt: Timestamp, attempts: Int, lastStatus: Int?, lastError: String?,
        deliveredAt: Timestamp?, gaveUpAt: Timestamp?, nextAttemptMs: Int64?, lastResponse: String? = nil
    ) {
        self.lastResponse = lastResponse
        self.eventId = eventId
        self.type = type
        self.examId = examId
        self.createdAt = createdAt
        self.attempts = attempts
        self.lastStatus = lastStatus
        self.lastError = lastError
        self.deliveredAt = deliveredAt
        self.gaveUpAt = gaveUpAt
        self.nextAttemptMs = nextAttemptMs
    }
}

/// A delivery a dispatcher leased: everything an attempt needs.
public struct WebhookAttempt: Sendable, Hashable {
    public var webhookId: String
    public var eventSeq: Int64
    public var eventId: String
    public var url: String
    public var secret: String
    public var body: String
    /// Attempts made before this one.
    public var attempts: Int
    public var createdAt: Timestamp

    public init(
        webhookId: String, eventSeq: Int64, eventId: String, url: String, secret: String, body: String, attempts: Int, createdAt: Timestamp
    ) {
        self.webhookId = webhookId
        self.eventSeq = eventSeq
        self.eventId = eventId
        self.url = url
        self.secret = secret
        self.body = body
        self.attempts = attempts
        self.createdAt = createdAt
    }
}

/// How an attempt ended, to record.
public struct WebhookAttemptOutcome: Sendable, Hashable {
    public enum Next: Sendable, Hashable {
        /// 2xx: delivered.
        case delivered
        /// Try again at this moment (ms since the epoch).
        case retry(atMs: Int64)
        /// The retries ran out.
        case gaveUp
    }

    public var status: Int?
    public var error: String?
    /// At most 1 KiB of the target's answer.
    public var response: String?
    public var next: Next

    public init(status: Int?, error: String?, response: String?, next: Next) {
        self.status = status
        self.error = error
        self.response = response
        self.next = next
    }
}
