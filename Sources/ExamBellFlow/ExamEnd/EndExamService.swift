import ExamBellCore
import ExamBellRuntime
import Foundation
import Logging

/// The scenario of seed §2 on the web server, in four steps: validate → the DB commits the
/// end → `Delivery` (the plan key, then the queue ∥ the candidates' keys: the seed's `par`,
/// moved after the commit, while socket nodes broadcast; then the outbox row marked and the
/// candidates' rows completed) → answer, and final sync after it. Nothing that grows with the
/// candidates comes before the queue entry.
///
/// The DB decides and goes first: its conditional update lets exactly one of concurrent
/// requests end the exam, and nothing else says "ended" before it committed. Browsers learn of
/// an end from the queue or, when they join late, from the state store; both are written only
/// after the commit, so no browser is ever told of an end the DB refused, and a request that
/// lost the race writes nothing (every reader sees the winner's one end time).
public struct EndExamService: Sendable {
    /// What an end request got.
    public struct Outcome: Sendable, Hashable {
        public var plan: ExamPlan
        /// True for the one request that ended the exam.
        public var ended: Bool
    }

    package let store: any ExamPlanStore
    package let outbox: OutboxRelay
    package let finalSync: FinalSync
    package let syncAfterEnd: Duration?
    package let logger: Logger
    package let metrics: NodeMetrics
    package let faults: FaultPoints

    package init(
        store: any ExamPlanStore, outbox: OutboxRelay, finalSync: FinalSync, syncAfterEnd: Duration? = nil, logger: Logger, metrics: NodeMetrics,
        faults: FaultPoints
    ) {
        self.store = store
        self.outbox = outbox
        self.finalSync = finalSync
        self.syncAfterEnd = syncAfterEnd
        self.logger = logger
        self.metrics = metrics
        self.faults = faults
    }

    /// Ends exam `examId` for `actor`, with an optional reason: validate → commit → deliver →
    /// sync. `requestLogger` carries the request id of the call; the end's log lines carry it
    /// and the end's id (`examId@endDatetime`), which the socket nodes log when they broadcast it.
    public func end(examId: String, actor: String, reason: String?, requestLogger: Logger? = nil) async throws -> Outcome {
        let logger = requestLogger ?? self.logger
        let started = metrics.endStarted(examId)
        defer { metrics.endRequest.recordInterval(since: started) }
        // Validate (seed §4.1): the exam exists and is in a state that can end.
        try Identifier.validate(examId, field: "examId")
        let plan = try await store.existingExam(examId)
        if plan.status == .completed { return Outcome(plan: plan, ended: false) }
        guard plan.status == .inProgress else { throw ExamBellError.wrongState(examId, is: plan.status, action: "end") }
        let validated = ContinuousClock.now
        // This node's relay leaves the exam's outbox row to this request until it is delivered.
        return try await outbox.delivering(examId: examId) {
            await faults.reach(.beforeEndCommit)
            let endDatetime = Timestamp.now()
            switch try await commit(examId: examId, at: endDatetime, actor: actor, reason: reason, logger: logger) {
            case .lost(let other):
                return Outcome(plan: other, ended: false)
            case .committedUnconfirmed(let ended):
                // The outbox row stays claimed until its lease ends; the relay then delivers it
                // again (which tells nobody twice), and does all of it if this attempt fails.
                _ = try? await outbox.delivery.tellEnd(ExamEndQueueMessage(examId: examId, timestamp: endDatetime))
                return Outcome(plan: ended, ended: true)
            case .committed(let ended, let entry):
                let committed = ContinuousClock.now
                await faults.reach(.afterEndCommit)
                let delivered = await outbox.delivery.deliver(entry)
                let settled = ContinuousClock.now
                let told = delivered?.told
                // The phases, in order: publishMs (commit → queue entry), fanOutMs (→ this node's
                // hub wrote every browser; "-" when the browsers are on other nodes), keysMs
                // (→ the candidates' keys), settleMs (→ the outbox row and the candidates' rows).
                let fanOut = told?.handedOff
                logger.info(
                    "exam ended",
                    metadata: [
                        "examId": "\(examId)", "endId": "\(examId)@\(endDatetime.iso8601)", "actor": "\(actor)",
                        "candidates": "\(told.map { String($0.candidateKeys) } ?? "not told yet")",
                        "validateMs": "\(Self.ms(validated - started))", "commitMs": "\(Self.ms(committed - validated))",
                        "publishMs": "\(Self.ms((told?.published ?? settled) - committed))",
                        "fanOutMs": "\(fanOut.map { Self.ms($0 - told!.published) } ?? "-")",
                        "keysMs": "\(Self.ms((told?.done ?? settled) - (fanOut ?? told?.published ?? settled)))",
                        "settleMs": "\(Self.ms(settled - (told?.done ?? settled)))",
                    ]
                )
                if let delay = syncAfterEnd { finalSync.scheduleSync(examId: examId, after: delay) }
                return Outcome(plan: ended, ended: true)
            }
        }
    }

    /// How the end's transaction came out.
    package enum Commit {
        /// This request ended the exam; its outbox row is leased to it.
        case committed(ExamPlan, OutboxEntry)
        /// This request's COMMIT went out and PostgreSQL holds it, but its answer was lost.
        case committedUnconfirmed(ExamPlan)
        /// Another request ended it first (with its own time).
        case lost(ExamPlan)
    }

    /// The DB commits the end (its conditional update lets one request win). A failure as
    /// unavailable (a lock wait that ran out, a lost connection, a COMMIT PostgreSQL still
    /// called in progress at the executor's bound) reads the truth back before answering.
    private func commit(examId: String, at endDatetime: Timestamp, actor: String, reason: String?, logger: Logger) async throws
        -> Commit
    {
        do {
            switch try await store.endExam(
                examId: examId, at: endDatetime, actor: actor, reason: reason, leaseUntil: outbox.leaseUntil(from: endDatetime))
            {
            case .alreadyCompleted(let winner): return .lost(winner)
            case .ended(let ended, let entry): return .committed(ended, entry)
            }
        } catch {
            guard let truth = await readBack(examId: examId, after: error),
                let ownEnd = Self.ownEnd(after: error, truth: truth, endDatetime: endDatetime)
            else { throw error }
            guard ownEnd else { return .lost(truth) }
            logger.warning("end committed but its answer was lost; delivering it", metadata: ["examId": "\(examId)"])
            return .committedUnconfirmed(truth)
        }
    }

    /// After an end transaction failed as unavailable: the exam as the DB holds it now, or
    /// nil (a clear refusal like a wrong state is taken as it is; so is a DB still away).
    private func readBack(examId: String, after error: any Error) async -> ExamPlan? {
        guard let error = error as? StoreError, error.isUnavailable else { return nil }
        return try? await store.exam(examId)
    }

    /// After an end transaction failed and the plan was read back: nil when the exam is not
    /// ended (the failure stands), true when the end is this request's own (its COMMIT went
    /// out unconfirmed, and the plan carries this request's end time), false when another
    /// request ended it. Every failure but an unconfirmed COMMIT rolled this one back, and
    /// the time alone does not tell: 100 ends at once share their millisecond.
    public static func ownEnd(after error: any Error, truth: ExamPlan, endDatetime: Timestamp) -> Bool? {
        guard truth.status == .completed else { return nil }
        return (error as? StoreError)?.isOutcomeUnknown == true && truth.endDatetime?.iso8601 == endDatetime.iso8601
    }

    static package func ms(_ duration: Duration) -> String {
        String(format: "%.1f", duration.inSeconds * 1000)
    }
}
