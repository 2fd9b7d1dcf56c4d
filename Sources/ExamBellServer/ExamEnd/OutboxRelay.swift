import ExamBellCore
import Logging
import ServiceLifecycle
import Synchronization

/// Publishes the DB's outbox to the queue: right after an end commits (`tell`, then `settle`),
/// and in the background for rows nobody published, e.g. after a web node died between its
/// commit and its publish. A row is leased before it is taken, so two relays never publish it
/// both.
///
/// An end request answers once the browsers' path is written (`tell`: the plan key, then the
/// queue entry ∥ the candidates' keys), then its row is marked published and the candidates'
/// DB rows completed (`settle`): the browsers are being told meanwhile, and the answer means
/// that the DB and the state store both hold the end for every candidate (DESIGN: the web
/// server marks the exam and its candidates completed in both). A settle that failed is
/// finished by the relay's next pass or by final sync.
///
/// A request that writes a row and delivers it itself does so inside `delivering(examId:)`:
/// this node's background passes leave that exam's rows alone meanwhile. The row's lease
/// starts when the request takes its time, before it waits for the DB; under load (100 ends
/// queued on one SQLite connection) the wait can outlast the lease, and the node's own relay
/// then published the row a second time beside the request.
public struct OutboxRelay: Service {
    let backends: ExamBellBackends
    let interval: Duration
    let lease: Duration
    let logger: Logger
    /// Exams with a request on this node between its DB change and its own delivery: how many.
    private let deliveringHere = DeliveriesInFlight()
    /// The queues' failover counts this relay has checked after.
    private let failoversChecked = FailoversChecked()
    /// How far back a failover's check looks: rows published this long before it.
    static let failoverRecheck: Int64 = 300

    /// The lease of a row written at `now` (at least one second).
    func leaseUntil(from now: Timestamp) -> Timestamp {
        now.adding(seconds: max(1, lease.components.seconds))
    }

    /// Runs `body`, a request that writes an outbox row of `examId` and delivers it itself,
    /// while this node's background passes leave the exam's rows alone. A row they claim
    /// meanwhile keeps their lease and is looked at again once it ends: by then the request
    /// has marked it published, or failed and left it to them.
    func delivering<R: Sendable>(examId: String, _ body: () async throws -> R) async rethrows -> R {
        deliveringHere.begin(examId)
        defer { deliveringHere.end(examId) }
        return try await body()
    }

    /// Delivers a committed row. An end: its keys and its queue entry (`announce`),
    /// then the row marked published (at once, so that no relay publishes it a second time),
    /// then the candidates' DB rows (final sync finishes them if this step fails). An
    /// exam-day event: its state keys and `queue:exam_events` (`publish`). Failures are
    /// logged; the row stays for the next pass (every step is idempotent: a second entry for
    /// the same end tells nobody twice, since a socket node remembers whom it told).
    @discardableResult
    public func deliver(_ entry: OutboxEntry) async -> Bool {
        guard await tell(entry) != nil else { return false }
        return await settle(entry)
    }

    /// The row's path to the browsers: an end's state keys and its queue entry (`announce`),
    /// an event's keys ∥ `queue:exam_events`. Returns how many candidates' keys an end wrote
    /// (0 for an event), or nil (logged): the row is left to the next pass.
    func tell(_ entry: OutboxEntry) async -> Int? {
        do {
            switch entry.content {
            case .examEnd(let message): return try await announce(message)
            case .event(let event):
                try await publish(event)
                return 0
            }
        } catch {
            logger.warning("outbox entry not published yet", metadata: ["outboxId": "\(entry.id)", "examId": "\(entry.examId)", "error": "\(error)"])
            return nil
        }
    }

    /// After `tell`: the row marked published (at once, so that no relay publishes it a second
    /// time), then, for an end, the candidates' DB rows (final sync finishes them if this fails).
    @discardableResult
    func settle(_ entry: OutboxEntry) async -> Bool {
        do {
            try await backends.store.markPublished(outboxId: entry.id, at: .now())
        } catch {
            logger.warning(
                "outbox entry published, not marked yet", metadata: ["outboxId": "\(entry.id)", "examId": "\(entry.examId)", "error": "\(error)"])
            return false
        }
        guard case .examEnd(let message) = entry.content else { return true }
        do {
            try await backends.store.completeCandidates(examId: message.examId, at: message.timestamp)
            return true
        } catch {
            logger.warning("candidates' rows not completed yet", metadata: ["examId": "\(message.examId)", "error": "\(error)"])
            return false
        }
    }

    /// An exam-day event after its commit: candidates ended alone get their keys (completed
    /// at their time) while the event is published to `queue:exam_events`; both are attempted.
    func publish(_ event: ExamEvent) async throws {
        guard case .candidateEnd(let ended) = event else {
            try await backends.events.publish(event)
            return
        }
        _ = try await Self.attemptBoth(
            { try await backends.state.writeEnded(candidateIds: ended.candidateIds, at: ended.timestamp) },
            { try await backends.events.publish(event) }
        )
    }

    /// The seed's `par`, after the DB committed the end. First the plan key says completed at
    /// the end time (a browser that joins after the broadcast reads it, so it is written before
    /// anyone can miss the broadcast); then `exam_end` is published while the candidates' ids
    /// are read and their keys written in one round trip: the browsers are told
    /// without waiting for 10,000 ids. Both branches are attempted even when one fails; the
    /// first failure is thrown. Returns how many candidate keys were written.
    @discardableResult
    func announce(_ message: ExamEndQueueMessage) async throws -> Int {
        try await backends.state.writeEnded(examId: message.examId, at: message.timestamp)
        let (_, count) = try await Self.attemptBoth(
            { try await backends.queue.publish(message) },
            {
                let ids = try await backends.store.candidateIds(examId: message.examId)
                try await backends.state.writeEnded(candidateIds: ids, at: message.timestamp)
                return ids.count
            }
        )
        return count
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

    /// One pass: claims the rows that are due and delivers them. Returns how many it published.
    @discardableResult
    public func publishDue() async -> Int {
        await republishAfterFailover()
        do {
            let now = Timestamp.now()
            let due = try await backends.store.claimOutbox(now: now, leaseUntil: leaseUntil(from: now), limit: 100)
            var published = 0
            for entry in due where !deliveringHere.contains(entry.examId) {
                if await deliver(entry) { published += 1 }
            }
            return published
        } catch is CancellationError {
            return 0
        } catch {
            logger.warning("outbox relay pass failed", metadata: ["error": "\(error)"])
            return 0
        }
    }

    /// After a failover of a queue's Redis (the new primary was a replica, and replication
    /// is asynchronous), the rows published in the last five minutes are looked for in the
    /// new primary's stream, and those it lacks are published again; final sync rewrites
    /// the state keys the same way. A socket node tells nobody twice, so an entry that was
    /// there after all costs nothing.
    func republishAfterFailover() async {
        for queue in [backends.queue, backends.events] {
            let seen = queue.failovers
            let known = failoversChecked.note(queue.stream, seen)
            // The first look only notes the count: a node that starts has nothing to check.
            guard let known, known != seen else { continue }
            do {
                let since = Timestamp.now().adding(seconds: -Self.failoverRecheck)
                let rows = try await backends.store.publishedOutbox(since: since).filter { $0.topic == queue.stream }
                // Stream ids are the Redis server's clock: a minute's slack for clocks apart.
                let missing = Set(try await queue.missing(rows.map(\.payload), since: since.adding(seconds: -60)))
                for row in rows where missing.contains(row.payload) {
                    try await queue.publish(payload: row.payload)
                    logger.warning(
                        "queue entry lost in a Redis failover; published again",
                        metadata: ["outboxId": "\(row.id)", "examId": "\(row.examId)", "stream": "\(queue.stream)"]
                    )
                }
                logger.info("checked the queue after a Redis failover", metadata: ["stream": "\(queue.stream)", "rows": "\(rows.count)"])
            } catch {
                // Looked at again on the next pass.
                failoversChecked.restore(queue.stream, known)
                logger.warning("could not check the queue after a Redis failover yet", metadata: ["error": "\(error)"])
            }
        }
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await publishDue()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
        // Finish what is due before exiting, so a graceful stop leaves nothing behind.
        await publishDue()
    }
}

/// A count per exam of the requests delivering their own rows on this node.
final class DeliveriesInFlight: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    func begin(_ examId: String) {
        counts.withLock { $0[examId, default: 0] += 1 }
    }

    func end(_ examId: String) {
        counts.withLock { counts in
            let left = (counts[examId] ?? 1) - 1
            counts[examId] = left > 0 ? left : nil
        }
    }

    func contains(_ examId: String) -> Bool {
        counts.withLock { $0[examId] != nil }
    }
}

/// The failover count of each stream a relay checked after.
final class FailoversChecked: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    /// Notes `count` for `stream`; returns the one noted before (nil the first time).
    func note(_ stream: String, _ count: Int) -> Int? {
        counts.withLock { counts in
            defer { counts[stream] = count }
            return counts[stream]
        }
    }

    /// Puts back `count`, so that the next pass checks again.
    func restore(_ stream: String, _ count: Int) {
        counts.withLock { $0[stream] = count }
    }
}
