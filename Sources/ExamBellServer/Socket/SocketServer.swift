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
    /// Largest frame and message a browser may send (pages send only a small ack).
    static let maxInboundSize = 4096
    /// Inbound messages a browser may send in a burst, and per second after it; one more
    /// closes its connection with 1008 (policy violation).
    static let inboundBurst = 20.0
    static let inboundPerSecond = 2.0

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
        // The hub ends the stream to drop a browser that fell behind (its buffer is full) or to
        // drain the node. A dropped browser's writer may be stuck on a full socket, so its
        // connection is cut at once rather than waiting for the frames still queued.
        let (dropped, droppedContinuation) = AsyncStream.makeStream(of: Void.self)
        let hub = self.hub
        continuation.onTermination = { _ in
            if !hub.isDraining { droppedContinuation.yield() }
            droppedContinuation.finish()
        }
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
                for await _ in dropped {
                    logger.notice("browser too slow; dropped", metadata: ["examId": "\(session.examId)"])
                    return
                }
                try await Task.sleep(for: .seconds(1 << 40))  // never: the stream ended with the browser
            }
            group.addTask {
                for await frame in frames {
                    try await outbound.write(.custom(.init(fin: true, opcode: .text, data: frame)))
                }
                if hub.isDraining {
                    try await outbound.close(Self.restartCloseCode, reason: "node restarting; reconnect")
                }
            }
            group.addTask {
                var allowance = Self.inboundBurst
                var last = ContinuousClock.now
                for try await message in inbound.messages(maxSize: Self.maxInboundSize) {
                    let now = ContinuousClock.now
                    let elapsed = now - last
                    last = now
                    allowance = min(
                        Self.inboundBurst,
                        allowance + Self.inboundPerSecond * (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
                    )
                    guard allowance >= 1 else {
                        logger.notice("browser sent too many messages; closing it", metadata: ["examId": "\(session.examId)"])
                        try await outbound.close(.policyViolation, reason: "too many messages")
                        return
                    }
                    allowance -= 1
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
