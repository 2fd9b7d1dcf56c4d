import ExamBellCore
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket

/// `GET /ws?token=`: checks the session token (no DB round trip), joins the browser to its
/// exam's room, tells a late joiner at once, and takes candidates' acks.
struct SocketServer: Sendable {
    let hub: SocketHub
    let sessions: SessionTokens
    let state: any StateStore
    let logger: Logger
    let maxConnections: Int
    /// Frames waiting for one browser before it counts as too slow and is dropped.
    static let outboundBufferFrames = 32
    /// The close code of a node that shuts down (1012, "service restart"): pages reconnect
    /// at once, spread over a second, and the load balancer sends them to another node.
    static let restartCloseCode = WebSocketErrorCode.unknown(1012)

    func addRoutes(to router: Router<BasicWebSocketRequestContext>) {
        router.ws("/ws") { request, _ in
            _ = try await sessions.verify(request.uri.queryParameters.get("token"))
            guard !hub.isDraining else {
                throw ExamBellError(
                    status: 503, code: "socket_node_draining", message: "This socket node is shutting down; try another node."
                )
            }
            guard hub.connectionCount < maxConnections else {
                throw ExamBellError(
                    status: 503, code: "socket_node_full",
                    message: "This socket node holds its maximum of \(maxConnections) browsers; try another node."
                )
            }
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            let session = try await sessions.verify(context.request.uri.queryParameters.get("token"))
            try await serve(session, inbound: inbound, outbound: outbound)
        }
    }

    private func serve(_ session: Session, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        let (frames, continuation) = AsyncStream.makeStream(
            of: ByteBuffer.self, bufferingPolicy: .bufferingOldest(Self.outboundBufferFrames)
        )
        let id = hub.join(session, outbound: continuation)
        logger.debug("browser joined", metadata: ["examId": "\(session.examId)", "role": "\(session.role.rawValue)"])
        defer {
            hub.leave(id, examId: session.examId)
            logger.debug("browser left", metadata: ["examId": "\(session.examId)", "role": "\(session.role.rawValue)"])
        }
        if !hub.hasEnded(session.examId) {
            await tellIfEnded(session.examId)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await frame in frames {
                    try await outbound.write(.custom(.init(fin: true, opcode: .text, data: frame)))
                }
                if hub.isDraining {
                    try await outbound.close(Self.restartCloseCode, reason: "node restarting; reconnect")
                }
            }
            group.addTask {
                for try await message in inbound.messages(maxSize: 4096) {
                    guard session.role == .candidate, case .text(let text) = message,
                        let ack = CandidateAckMessage(json: text), ack.examId == session.examId,
                        hub.acknowledge(id, examId: session.examId)
                    else { continue }
                    do {
                        try await state.recordAck(planId: session.examId, candidateId: session.subject, at: .now())
                    } catch {
                        logger.warning("could not record an ack", metadata: ["examId": "\(session.examId)"])
                    }
                }
            }
            // Whichever side ends first (browser closed, or dropped as too slow) ends both.
            try await group.next()
            group.cancelAll()
        }
    }

    /// A browser that connects after the end learns it from the state store.
    private func tellIfEnded(_ examId: String) async {
        do {
            if let plan = try await state.plan(examId), plan.status == .completed, let end = plan.endDatetime {
                hub.broadcast(ExamEndSocketMessage(examId: examId, timestamp: end))
            }
        } catch {
            logger.warning("state store unreachable while checking a late joiner", metadata: ["examId": "\(examId)"])
        }
    }
}
