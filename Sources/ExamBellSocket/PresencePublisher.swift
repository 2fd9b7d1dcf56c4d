import ExamBellCore
import Logging
import ServiceLifecycle

/// Publishes who is connected to this socket node into the state store, so that any web
/// node can count connected browsers: changed exams every tick (their counts and the members
/// that moved, `RoomPresence`), all of them as a heartbeat, every member now and then.
/// Before them go the candidates' connection spans opened or closed since the last tick (one
/// command an exam), which the exam report reads; the heartbeat keeps this node's open spans
/// alive.
package struct PresencePublisher: Service {
    package let hub: SocketHub
    package let state: any StateStore
    package let nodeId: String
    package let interval: Duration
    package let logger: Logger

    package init(hub: SocketHub, state: any StateStore, nodeId: String, interval: Duration, logger: Logger) {
        self.hub = hub
        self.state = state
        self.nodeId = nodeId
        self.interval = interval
        self.logger = logger
    }
    /// Every this many ticks every exam is refreshed, so readers can drop silent nodes.
    static package let heartbeatTicks = 5
    /// Every this many ticks every member of every exam is written again (a write a Redis
    /// failover lost is mended within it); between them a tick writes what changed.
    static package let fullTicks = 60

    package func publish(all: Bool, full: Bool = false) async {
        for (examId, fields) in hub.takeSpanChanges() {
            do {
                try await state.recordConnections(examId: examId, fields)
            } catch {
                logger.debug("connection spans not recorded", metadata: ["examId": "\(examId)", "spans": "\(fields.count)"])
            }
        }
        for (examId, update) in hub.takePresence(all: all, full: full) {
            do {
                try await state.publishPresence(examId: examId, nodeId: nodeId, update)
            } catch {
                hub.presenceNotPublished(examId)
                logger.debug("presence not published", metadata: ["examId": "\(examId)"])
            }
        }
    }

    package func run() async throws {
        var tick = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await publish(all: tick % Self.heartbeatTicks == 0, full: tick % Self.fullTicks == 0)
            tick += 1
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
