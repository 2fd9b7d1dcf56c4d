import ExamBellCore
import ExamBellRuntime
import Logging
import Synchronization

/// The one owner of delivering a committed outbox row, called the same way by the request that
/// wrote it and by the background relay (which only claims rows nobody delivered):
///
/// 1. `tell`: the browsers' path. An end: the plan key (a browser joining late reads it),
///    then the queue entry ∥ the candidates' keys (the seed's `par`, after the commit; the
///    socket nodes broadcast meanwhile). An exam-day event: keys of candidates ended alone ∥
///    `queue:exam_events`.
/// 2. `settle`: the row marked published (at once, so no relay publishes it again), then for
///    an end the candidates' DB rows completed (final sync finishes them if this fails).
///
/// Every step is idempotent: a second entry for the same end tells nobody twice (a socket
/// node remembers whom it told). Failures are logged and the row stays for the relay.
public struct Delivery: Sendable {
    package let store: any OutboxStore & PeopleStore & ExamPlanStore
    package let state: any StateStore
    /// `queue:exam_end` and `queue:exam_events`.
    package let queue: any ExamEndQueue
    package let events: any ExamEndQueue
    package let logger: Logger
    /// On a node that also runs sockets: its hub's hand-off of an end, which the end's
    /// bookkeeping waits for (at most `handOffBound`), so that it does not share the fan-out's
    /// cores. Nil on a web node alone: its socket nodes run elsewhere.
    package let handOff: FanOutHandOff?
    package let handOffBound: Duration

    package init(
        store: any OutboxStore & PeopleStore & ExamPlanStore, state: any StateStore, queue: any ExamEndQueue, events: any ExamEndQueue,
        logger: Logger,
        handOff: FanOutHandOff? = nil, handOffBound: Duration = .seconds(1)
    ) {
        self.store = store
        self.state = state
        self.queue = queue
        self.events = events
        self.logger = logger
        self.handOff = handOff
        self.handOffBound = handOffBound
    }

    /// How far the browsers' path went: how many candidates' keys an end wrote (0 for an
    /// event); when the queue entry was published; for an end this node's hub fanned out,
    /// when the hub had written it to every browser (or the wait's bound passed); when the
    /// path was done.
    public struct Told: Sendable {
        public var candidateKeys: Int
        public var published: ContinuousClock.Instant
        public var handedOff: ContinuousClock.Instant?
        public var done: ContinuousClock.Instant
    }

    /// How far a delivery went: told (see `Told`), and whether the row was settled.
    public struct Delivered: Sendable {
        public var told: Told
        public var settled: Bool
    }

    /// Delivers `entry`: tells, then settles. Nil when not even told (the row is left to the relay).
    @discardableResult
    public func deliver(_ entry: OutboxEntry) async -> Delivered? {
        guard let told = await tell(entry) else { return nil }
        return Delivered(told: told, settled: await settle(entry))
    }

    /// The row's path to the browsers, or nil (logged).
    package func tell(_ entry: OutboxEntry) async -> Told? {
        do {
            switch entry.content {
            case .examEnd(let message): return try await tellEnd(message)
            case .event(let event):
                try await tellEvent(event)
                let now = ContinuousClock.now
                return Told(candidateKeys: 0, published: now, done: now)
            }
        } catch {
            logger.warning("outbox entry not published yet", metadata: ["outboxId": "\(entry.id)", "examId": "\(entry.examId)", "error": "\(error)"])
            return nil
        }
    }

    /// After `tell`: the row marked published, then for an end the candidates' DB rows.
    package func settle(_ entry: OutboxEntry) async -> Bool {
        do {
            try await store.markPublished(outboxId: entry.id, at: .now())
        } catch {
            logger.warning(
                "outbox entry published, not marked yet", metadata: ["outboxId": "\(entry.id)", "examId": "\(entry.examId)", "error": "\(error)"])
            return false
        }
        guard case .examEnd(let message) = entry.content else { return true }
        do {
            try await store.completeCandidates(examId: message.examId, at: message.timestamp)
            return true
        } catch {
            logger.warning("candidates' rows not completed yet", metadata: ["examId": "\(message.examId)", "error": "\(error)"])
            return false
        }
    }

    /// An end's path: the plan key first, then `exam_end` published and the candidates' ids
    /// read and their keys written in one round trip (the browsers are told without waiting
    /// for 10,000 ids). On a web node alone the two run at once; on a node whose own hub fans
    /// the end out, the ids and keys wait until the hub wrote every browser's frame (at most
    /// `handOffBound`). Both are attempted even when one fails; the first failure is thrown.
    @discardableResult
    package func tellEnd(_ message: ExamEndQueueMessage) async throws -> Told {
        try await state.writeEnded(examId: message.examId, at: message.timestamp)
        let keys: @Sendable () async throws -> Int = {
            let ids = try await store.candidateIds(examId: message.examId)
            try await state.writeEnded(candidateIds: ids, at: message.timestamp)
            return ids.count
        }
        guard let handOff else {
            let published = PublishedAt()
            let (_, count) = try await Self.attemptBoth(
                {
                    try await queue.publish(message)
                    published.mark()
                },
                keys
            )
            return Told(candidateKeys: count, published: published.instant ?? .now, done: .now)
        }
        let key = FanOutHandOff.key(examId: message.examId, at: message.timestamp)
        handOff.expect(key)
        var failure: (any Error)?
        do { try await queue.publish(message) } catch {
            failure = error
            handOff.forget(key)
        }
        let published = ContinuousClock.now
        var handedOff: ContinuousClock.Instant?
        if failure == nil {
            _ = await handOff.wait(key, atMost: handOffBound)
            handedOff = .now
        }
        let count = try await keys()
        if let failure { throw failure }
        return Told(candidateKeys: count, published: published, handedOff: handedOff, done: .now)
    }

    /// An exam-day event's path: candidates ended alone get their keys (completed at their
    /// time) while the event is published to `queue:exam_events`; both are attempted.
    package func tellEvent(_ event: ExamEvent) async throws {
        guard case .candidateEnd(let ended) = event else {
            try await events.publish(event)
            return
        }
        _ = try await Self.attemptBoth(
            { try await state.writeEnded(candidateIds: ended.candidateIds, at: ended.timestamp) },
            { try await events.publish(event) }
        )
    }

    /// When the queue entry went out, from the branch that published it.
    private final class PublishedAt: Sendable {
        private let at = Mutex<ContinuousClock.Instant?>(nil)
        func mark() { at.withLock { $0 = .now } }
        var instant: ContinuousClock.Instant? { at.withLock { $0 } }
    }

    /// Runs both at once and waits for both, even when one fails; throws the first failure.
    private static func attemptBoth<A: Sendable, B: Sendable>(
        _ first: @escaping @Sendable () async throws -> A, _ second: @escaping @Sendable () async throws -> B
    ) async throws -> (A, B) {
        async let a = first()
        async let b = second()
        var results: (A?, B?) = (nil, nil)
        var failure: (any Error)?
        do { results.0 = try await a } catch { failure = error }
        do { results.1 = try await b } catch { failure = failure ?? error }
        if let failure { throw failure }
        return (results.0!, results.1!)
    }
}
