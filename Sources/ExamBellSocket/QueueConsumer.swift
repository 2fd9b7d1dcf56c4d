import ExamBellCore
import ExamBellRuntime
import Logging
import ServiceLifecycle

/// A socket node's reader of one queue stream (`queue:exam_end` or `queue:exam_events`)
/// through its own consumer group (its node id): first the entries it took but never
/// acknowledged (it died mid-broadcast), then new ones; each is handed to the browsers, then
/// acknowledged.
package struct QueueConsumer: Service {
    package let queue: any ExamEndQueue
    package let state: any StateStore
    package let hub: SocketHub
    package let group: String
    package let logger: Logger
    package let metrics: NodeMetrics
    /// Told when an end's frame was written to every browser here (a node running both roles).
    package let handOff: FanOutHandOff?

    package init(
        queue: any ExamEndQueue, state: any StateStore, hub: SocketHub, group: String, logger: Logger, metrics: NodeMetrics,
        faults: FaultPoints = .none, handOff: FanOutHandOff? = nil
    ) {
        self.handOff = handOff
        self.queue = queue
        self.state = state
        self.hub = hub
        self.group = group
        self.logger = logger
        self.metrics = metrics
        self.faults = faults
    }
    package var faults = FaultPoints.none

    package func run() async throws {
        var backoff: Duration = .milliseconds(200)
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let started = ContinuousClock.now
            do {
                try await cancelWhenGracefulShutdown {
                    try await queue.createGroup(group)
                    // Back after an outage (or a fresh start): an end published while this node
                    // could not read, or before its group existed, is found in the state store.
                    // (Pages learn missed exam-day events from the API when they reconnect.)
                    if queue.stream == QueueStream.examEnd { await catchUp() }
                    while true {
                        let pending = try await queue.pending(group: group, limit: 100)
                        if pending.isEmpty { break }
                        try await handle(pending)
                    }
                    while !Task.isCancelled {
                        try await handle(try await queue.read(group: group, limit: 100, timeout: .seconds(2)))
                    }
                }
            } catch {
                // A consumer that ran a while before failing starts its backoff afresh.
                if ContinuousClock.now - started > .seconds(30) { backoff = .milliseconds(200) }
                if Task.isCancelled || Task.isShuttingDownGracefully { break }
                logger.warning("queue unavailable; retrying", metadata: ["group": "\(group)", "error": "\(error)"])
                let delay = backoff
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: delay) }
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }

    /// Tells the browsers of every exam this node holds that the state store says has ended.
    package func catchUp() async {
        for examId in hub.examsNotEnded() {
            do {
                if let plan = try await state.plan(examId), plan.status == .completed, let end = plan.endDatetime {
                    let told = hub.broadcast(ExamEndSocketMessage(examId: examId, timestamp: end))
                    logger.info("exam_end caught up from the state store", metadata: ["examId": "\(examId)", "browsers": "\(told)"])
                }
            } catch {
                logger.warning("state store unreachable while catching up", metadata: ["examId": "\(examId)"])
                return
            }
        }
    }

    private func handle(_ entries: [QueueEntry]) async throws {
        guard !entries.isEmpty else { return }
        for entry in entries {
            metrics.entryRead(entry.id)
            await faults.reach(.socketAfterRead)
            if let message = entry.message {
                let key = FanOutHandOff.key(examId: message.examId, at: message.timestamp)
                var written: (@Sendable () -> Void)?
                if let handOff { written = { handOff.written(key) } }
                let told = hub.broadcast(ExamEndSocketMessage(message), written: written)
                metrics.broadcastDone(examId: message.examId, told: told, entryId: entry.id)
                logger.info(
                    "exam_end broadcast",
                    metadata: [
                        "examId": "\(message.examId)", "endId": "\(message.examId)@\(message.timestamp.iso8601)",
                        "browsers": "\(told)", "entryId": "\(entry.id)",
                    ]
                )
            } else if let event = entry.event {
                let told =
                    switch event {
                    case .candidateEnd(let ended): hub.endCandidates(ended)
                    case .time(let change): hub.changeTime(change)
                    case .announcement(let notice): hub.announce(notice)
                    }
                logger.info("exam event sent", metadata: ["examId": "\(event.examId)", "browsers": "\(told)", "entryId": "\(entry.id)"])
            } else {
                logger.error("unreadable queue entry skipped", metadata: ["id": "\(entry.id)", "stream": "\(queue.stream)"])
            }
        }
        try await queue.acknowledge(group: group, ids: entries.map(\.id))
    }
}
