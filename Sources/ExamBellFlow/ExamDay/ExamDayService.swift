import ExamBellCore
import Logging

/// The exam day around the end, over the same path as the end: the DB commits the change
/// with its outbox row → the relay writes the state store and publishes to
/// `queue:exam_events` → every socket node tells the browsers concerned.
///
/// - Time control: the planned end moves for everyone or for listed candidates.
/// - Single ends: a candidate ends alone (own end passed, an operator, or its hand-in); its
///   DB row and `exam_candidate:{id}:status` become completed at that time and only its
///   browsers get `exam_end` with that time.
/// - Announcements: a notice to every candidate of an exam or to listed ones.
public struct ExamDayService: Sendable {
    /// What ending one candidate got.
    public struct CandidateOutcome: Sendable, Hashable {
        public var candidateId: String
        public var endDatetime: Timestamp
        /// True when this call ended it.
        public var ended: Bool
    }

    package let store: any ExamDayStore
    package let outbox: OutboxRelay
    package let logger: Logger

    package init(store: any ExamDayStore, outbox: OutboxRelay, logger: Logger) {
        self.store = store
        self.outbox = outbox
        self.logger = logger
    }

    /// Moves the planned end (see `ExamDayStore.changeTime`); delivered at once unless a preview.
    public func changeTime(examId: String, _ change: TimeChange, actor: String, reason: String, preview: Bool) async throws
        -> TimeChangeResult
    {
        let result = try await outbox.delivering(examId: examId) {
            let now = Timestamp.now()
            let result = try await store.changeTime(
                examId: examId, change, actor: actor, reason: reason, at: now, preview: preview, leaseUntil: outbox.leaseUntil(from: now)
            )
            if let entry = result.outbox { await outbox.delivery.deliver(entry) }
            return result
        }
        if result.outbox != nil {
            logger.info(
                "planned end moved",
                metadata: [
                    "examId": "\(examId)", "actor": "\(actor)", "scheduledEnd": "\(result.scheduledEndDatetime.iso8601)",
                    "candidates": "\(change.candidateIds?.count ?? -1)",
                ]
            )
        }
        return result
    }

    /// Ends one candidate alone now (an operator, or its own hand-in when `actor` is the candidate).
    public func endCandidate(
        examId: String, candidateId: String, actor: String, reason: String?, endedBy: CandidateEndCause = .byOperator
    ) async throws -> CandidateOutcome {
        let result = try await endCandidates(examId: examId, candidateIds: [candidateId], actor: actor, reason: reason, endedBy: endedBy)
        if let time = result.alreadyCompleted[candidateId] {
            return CandidateOutcome(candidateId: candidateId, endDatetime: time, ended: false)
        }
        guard result.ended == [candidateId], let time = result.endDatetime else {
            throw ExamBellError(status: 503, code: "service_unavailable", message: "The candidate's end was not confirmed; try again.")
        }
        return CandidateOutcome(candidateId: candidateId, endDatetime: time, ended: true)
    }

    /// What `endCandidates` did, with the time the ended ones got.
    public struct CandidatesOutcome: Sendable {
        public var ended: [String]
        public var alreadyCompleted: [String: Timestamp]
        public var endDatetime: Timestamp?
    }

    /// Ends candidates alone now, in one transaction and one event (the scheduler ends every
    /// due candidate of an exam at once).
    public func endCandidates(
        examId: String, candidateIds: [String], actor: String, reason: String?, endedBy: CandidateEndCause = .byOperator
    ) async throws -> CandidatesOutcome {
        let now = Timestamp.now()
        let result = try await outbox.delivering(examId: examId) {
            let result = try await store.endCandidates(
                examId: examId, candidateIds: candidateIds, at: now, actor: actor, reason: reason, endedBy: endedBy,
                leaseUntil: outbox.leaseUntil(from: now)
            )
            if let entry = result.outbox { await outbox.delivery.deliver(entry) }
            return result
        }
        if result.outbox != nil {
            logger.info(
                "candidates ended alone", metadata: ["examId": "\(examId)", "actor": "\(actor)", "candidates": "\(result.ended.count)"]
            )
        }
        return CandidatesOutcome(ended: result.ended, alreadyCompleted: result.alreadyCompleted, endDatetime: result.ended.isEmpty ? nil : now)
    }

    /// Sends a notice to every candidate of a running exam, or to the listed ones.
    public func announce(examId: String, message: String, candidateIds: [String]?, actor: String) async throws -> AnnouncementEvent {
        try await outbox.delivering(examId: examId) {
            let now = Timestamp.now()
            let (event, entry) = try await store.announce(
                examId: examId, message: message, candidateIds: candidateIds, actor: actor, at: now, leaseUntil: outbox.leaseUntil(from: now)
            )
            await outbox.delivery.deliver(entry)
            return event
        }
    }
}
