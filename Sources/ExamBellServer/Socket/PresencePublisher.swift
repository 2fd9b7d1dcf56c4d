import ExamBellCore
import Logging
import ServiceLifecycle

/// Publishes who is connected to this socket node into the state store, so that any web
/// node can count connected browsers: changed exams every tick, all of them as a heartbeat.
struct PresencePublisher: Service {
    let hub: SocketHub
    let state: any StateStore
    let nodeId: String
    let interval: Duration
    let logger: Logger
    /// Every this many ticks every exam is refreshed, so readers can drop silent nodes.
    static let heartbeatTicks = 5

    func publish(all: Bool) async {
        let now = Timestamp.now()
        for examId in hub.takeChangedExams(all: all) {
            do {
                try await state.setPresence(examId: examId, nodeId: nodeId, hub.presence(examId, at: now))
            } catch {
                logger.debug("presence not published", metadata: ["examId": "\(examId)"])
            }
        }
    }

    func run() async throws {
        var tick = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await publish(all: tick % Self.heartbeatTicks == 0)
            tick += 1
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
