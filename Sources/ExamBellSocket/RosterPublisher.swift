import ExamBellCore
import ExamBellRuntime
import Foundation
import Logging
import NIOCore
import ServiceLifecycle

/// Pushes the live roster (`{"type":"roster",…}`, the body of `GET /api/exams/{id}/roster`)
/// to the proctors connected to this socket node, once per tick for each exam that has one:
/// who is connected, status, last activity, answered count and, after an end, the acks.
package struct RosterPublisher: Service {
    package let hub: SocketHub
    package let plans: any ExamPlanStore
    package let roster: RosterBuilder
    package let interval: Duration
    package let logger: Logger

    package init(hub: SocketHub, plans: any ExamPlanStore, roster: RosterBuilder, interval: Duration, logger: Logger) {
        self.hub = hub
        self.plans = plans
        self.roster = roster
        self.interval = interval
        self.logger = logger
    }

    package func publishOnce() async {
        let builder = roster
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        for examId in hub.examsWithProctors() {
            do {
                guard let plan = try await plans.exam(examId) else { continue }
                let roster = try await builder.roster(of: plan)
                hub.sendToProctors(examId, text: ByteBuffer(bytes: try encoder.encode(roster)))
            } catch {
                logger.debug("roster not published", metadata: ["examId": "\(examId)"])
            }
        }
    }

    package func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await publishOnce()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
