import ExamBellCore
import Logging
import ServiceLifecycle

/// Publishes who is connected to this socket node into the state store, so that any web
/// node can count connected browsers: changed exams every tick, all of them as a heartbeat.
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

    package func publish(all: Bool) async {
        let now = Timestamp.now()
        for (examId, fields) in hub.takeSpanChanges() {
            do {
                try await state.recordConnections(examId: examId, fields)
            } catch {
                logger.debug("connection spans not recorded", metadata: ["examId": "\(examId)", "spans": "\(fields.count)"])
            }
        }
        for examId in hub.takeChangedExams(all: all) {
            do {
                var presence = hub.presence(examId, at: now)
                presence.instance = hub.instance
                try await state.setPresence(examId: examId, nodeId: nodeId, presence)
            } catch {
                logger.debug("presence not published", metadata: ["examId": "\(examId)"])
            }
        }
    }

    package func run() async throws {
        var tick = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await publish(all: tick % Self.heartbeatTicks == 0)
            tick += 1
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
