import ExamBellCore
import Logging
import ServiceLifecycle
import Synchronization

/// Delivers the DB's outbox rows nobody delivered (`Delivery`), e.g. after a web node died
/// between its commit and its publish, and after a Redis failover the entries the new primary
/// lacks. A row is leased before it is taken, so two relays never deliver it both.
///
/// A request that writes a row and delivers it itself does so inside `delivering(examId:)`:
/// this node's background passes leave that exam's rows alone meanwhile. The row's lease
/// starts when the request takes its time, before it waits for the DB; under load (100 ends
/// queued on one SQLite connection) the wait can outlast the lease, and the node's own relay
/// then published the row a second time beside the request.
public struct OutboxRelay: Service {
    /// The rows to claim, and the rows published lately (checked after a failover).
    package let outbox: any OutboxStore
    /// What delivers each row, here and in the requests.
    public let delivery: Delivery
    package let interval: Duration
    package let lease: Duration
    package let logger: Logger

    package init(outbox: any OutboxStore, delivery: Delivery, interval: Duration, lease: Duration, logger: Logger) {
        self.outbox = outbox
        self.delivery = delivery
        self.interval = interval
        self.lease = lease
        self.logger = logger
    }
    /// Exams with a request on this node between its DB change and its own delivery: how many.
    private let deliveringHere = DeliveriesInFlight()
    /// The queues' failover counts this relay has checked after.
    private let failoversChecked = FailoversChecked()
    /// How far back a failover's check looks: rows published this long before it.
    static package let failoverRecheck: Int64 = 300

    /// The lease of a row written at `now` (at least one second).
    package func leaseUntil(from now: Timestamp) -> Timestamp {
        now.adding(seconds: max(1, lease.components.seconds))
    }

    /// Runs `body`, a request that writes an outbox row of `examId` and delivers it itself,
    /// while this node's background passes leave the exam's rows alone. A row they claim
    /// meanwhile keeps their lease and is looked at again once it ends: by then the request
    /// has marked it published, or failed and left it to them.
    package func delivering<R: Sendable>(examId: String, _ body: () async throws -> R) async rethrows -> R {
        deliveringHere.begin(examId)
        defer { deliveringHere.end(examId) }
        return try await body()
    }

    /// One pass: claims the rows that are due and delivers them. Returns how many it published.
    @discardableResult
    public func publishDue() async -> Int {
        await republishAfterFailover()
        do {
            let now = Timestamp.now()
            let due = try await outbox.claimOutbox(now: now, leaseUntil: leaseUntil(from: now), limit: 100)
            var published = 0
            for entry in due where !deliveringHere.contains(entry.examId) {
                if await delivery.deliver(entry)?.settled == true { published += 1 }
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
    package func republishAfterFailover() async {
        for queue in [delivery.queue, delivery.events] {
            let seen = queue.failovers
            let known = failoversChecked.note(queue.stream, seen)
            // The first look only notes the count: a node that starts has nothing to check.
            guard let known, known != seen else { continue }
            do {
                let since = Timestamp.now().adding(seconds: -Self.failoverRecheck)
                let rows = try await outbox.publishedOutbox(since: since).filter { $0.topic == queue.stream }
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
final package class DeliveriesInFlight: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    package func begin(_ examId: String) {
        counts.withLock { $0[examId, default: 0] += 1 }
    }

    package func end(_ examId: String) {
        counts.withLock { counts in
            let left = (counts[examId] ?? 1) - 1
            counts[examId] = left > 0 ? left : nil
        }
    }

    package func contains(_ examId: String) -> Bool {
        counts.withLock { $0[examId] != nil }
    }
}

/// The failover count of each stream a relay checked after.
final package class FailoversChecked: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    /// Notes `count` for `stream`; returns the one noted before (nil the first time).
    package func note(_ stream: String, _ count: Int) -> Int? {
        counts.withLock { counts in
            defer { counts[stream] = count }
            return counts[stream]
        }
    }

    /// Puts back `count`, so that the next pass checks again.
    package func restore(_ stream: String, _ count: Int) {
        counts.withLock { $0[stream] = count }
    }
}
