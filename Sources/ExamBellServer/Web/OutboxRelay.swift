import ExamBellCore
import Logging
import ServiceLifecycle

/// Publishes the DB's outbox to the queue: right after an end commits (`deliver`), and in
/// the background for rows nobody published, e.g. after a web node died between its commit
/// and its publish. A row is leased before it is taken, so two relays never publish it both.
public struct OutboxRelay: Service {
    let backends: ExamBellBackends
    let interval: Duration
    let lease: Duration
    let logger: Logger

    /// Makes the state store say completed (unless already done), publishes the message,
    /// completes the candidates' DB rows and marks the row published. Failures are logged;
    /// the row stays for the next pass (every step is idempotent).
    @discardableResult
    public func deliver(_ entry: OutboxEntry, stateAlreadyWritten: Bool) async -> Bool {
        do {
            if !stateAlreadyWritten {
                let ids = try await backends.store.candidateIds(planId: entry.planId)
                try await backends.state.writeEnded(planId: entry.planId, candidateIds: ids, at: entry.message.timestamp)
            }
            try await backends.queue.publish(entry.message)
            // Off the browsers' path: they are being told while the candidates' rows change.
            try await backends.store.completeCandidates(planId: entry.planId, at: entry.message.timestamp)
            try await backends.store.markPublished(outboxId: entry.id, at: .now())
            return true
        } catch {
            logger.warning("outbox entry not published yet", metadata: ["outboxId": "\(entry.id)", "examId": "\(entry.planId)", "error": "\(error)"])
            return false
        }
    }

    /// One pass: claims the rows that are due and delivers them. Returns how many it published.
    @discardableResult
    public func publishDue() async -> Int {
        do {
            let now = Timestamp.now()
            let due = try await backends.store.claimOutbox(
                now: now, leaseUntil: now.adding(seconds: max(1, lease.components.seconds)), limit: 100
            )
            var published = 0
            for entry in due where await deliver(entry, stateAlreadyWritten: false) {
                published += 1
            }
            return published
        } catch is CancellationError {
            return 0
        } catch {
            logger.warning("outbox relay pass failed", metadata: ["error": "\(error)"])
            return 0
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
