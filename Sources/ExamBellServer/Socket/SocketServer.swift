import ExamBellCore
import Hummingbird
import Logging
import NIOCore
import HTTPTypes
import HummingbirdCore
import NIOWebSocket

/// `GET /ws?token=`: checks the session token (no DB round trip), joins the browser to its
/// exam's room, tells a late joiner at once, and takes candidates' acks. The connections
/// themselves are `SocketChildChannel`'s.
struct SocketServer: Sendable {
    let hub: SocketHub
    let sessions: SessionTokens
    let state: any StateStore
    let logger: Logger
    let maxConnections: Int
    /// The close code of a node that shuts down (1012, "service restart"): pages reconnect
    /// at once, spread over a second, and the load balancer sends them to another node.
    static let restartCloseCode = WebSocketErrorCode.unknown(1012)
    /// Largest frame and message a browser may send (pages send only a small ack).
    static let maxInboundSize = 4096
    /// Inbound messages a browser may send in a burst, and per second after it; one more
    /// closes its connection with 1008 (policy violation).
    static let inboundBurst = 20.0
    static let inboundPerSecond = 2.0

    /// Why a browser may not connect now, as the error the HTTP route `GET /ws` answers.
    func refusal(token: String?) async -> ExamBellError? {
        do {
            _ = try await sessions.verify(token)
        } catch {
            return error
        }
        if hub.isDraining {
            return ExamBellError(status: 503, code: "socket_node_draining", message: "This socket node is shutting down; try another node.")
        }
        if hub.connectionCount >= maxConnections {
            return ExamBellError(
                status: 503, code: "socket_node_full",
                message: "This socket node holds its maximum of \(maxConnections) browsers; try another node."
            )
        }
        return nil
    }

    /// The session of a browser that may connect now, or why it may not.
    func admit(token: String?) async -> Result<Session, ExamBellError> {
        if let refusal = await refusal(token: token) { return .failure(refusal) }
        do {
            return .success(try await sessions.verify(token))
        } catch {
            return .failure(error)
        }
    }

    /// `GET /ws` that was not upgraded: the reason, with its status (401, 503, or 400 for a
    /// request that is no WebSocket handshake).
    func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("ws") { request, _ -> Response in
            if let refusal = await refusal(token: request.uri.queryParameters.get("token")) { throw refusal }
            throw ExamBellError.badRequest(code: "websocket_required", "GET /ws is a WebSocket endpoint: open it with a WebSocket handshake.")
        }
    }

    /// A browser's channel is open: it joins its exam's room; one that connects after the end
    /// is told at once (from the hub, or from the state store when this node missed the end).
    func joined(_ session: Session, channel: any Channel, onDrain: @escaping @Sendable () -> Void) -> UInt64 {
        let id = hub.join(session, channel: channel, onDrain: onDrain)
        logger.debug("browser joined", metadata: ["examId": "\(session.examId)", "role": "\(session.role.rawValue)"])
        if !hub.hasEnded(session.examId) {
            Task { await tellIfEnded(session.examId) }
        }
        return id
    }

    func left(_ id: UInt64, session: Session) {
        hub.leave(id, examId: session.examId)
        logger.debug("browser left", metadata: ["examId": "\(session.examId)", "role": "\(session.role.rawValue)"])
    }

    /// A text message from a browser: a candidate's ack of the end is recorded once.
    func received(_ text: String, from id: UInt64, session: Session) {
        guard session.role == .candidate, let ack = CandidateAckMessage(json: text), ack.examId == session.examId,
            hub.acknowledge(id, examId: session.examId)
        else { return }
        Task {
            do {
                try await state.recordAck(planId: session.examId, candidateId: session.subject, at: .now())
            } catch {
                logger.warning("could not record an ack", metadata: ["examId": "\(session.examId)"])
            }
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
