import ExamBellCore
import ExamBellHTTP
import ExamBellRuntime
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// `GET /ws?token=`: checks the session token (no DB round trip) and the node's limits; an
/// admitted browser is served by its `BrowserHandler` on the node's own pipeline
/// (`BrowserChannel`), which joins it to its exam's room, tells a late joiner at once, and
/// takes candidates' acks and receipts (recorded here).
package struct SocketServer: Sendable {
    package let hub: SocketHub
    package let sessions: SessionTokens
    package let state: any StateStore
    package let logger: Logger
    package let maxConnections: Int
    /// Connections one session token may hold open on this node at once.
    package var maxConnectionsPerSession = 3
    /// Which pages may open sockets.
    package var origins = OriginPolicy()
    /// Sockets one client address may hold open on this node; nil for no cap (the default:
    /// an exam hall behind one NAT address, or a load balancer not declared trusted, would
    /// hit it). Behind trusted proxies, the address is the one they forward for.
    package var maxConnectionsPerAddress: Int? = nil
    /// The load balancers whose `X-Forwarded-For` names the client.
    package var trustedProxies = TrustedProxies()
    package let metrics: NodeMetrics
    /// How often browsers are pinged; one that has not answered the last ping is dropped.
    package let pingInterval: TimeAmount
    /// One ping timer per event loop for the browsers on it.
    package let pings: PingRounds

    package init(
        hub: SocketHub, sessions: SessionTokens, state: any StateStore, logger: Logger, maxConnections: Int,
        maxConnectionsPerSession: Int = 3, origins: OriginPolicy = OriginPolicy(), maxConnectionsPerAddress: Int? = nil,
        trustedProxies: TrustedProxies = TrustedProxies(), metrics: NodeMetrics, pingInterval: TimeAmount
    ) {
        self.hub = hub
        self.sessions = sessions
        self.state = state
        self.logger = logger
        self.maxConnections = maxConnections
        self.maxConnectionsPerSession = maxConnectionsPerSession
        self.origins = origins
        self.maxConnectionsPerAddress = maxConnectionsPerAddress
        self.trustedProxies = trustedProxies
        self.metrics = metrics
        self.pingInterval = pingInterval
        self.pings = PingRounds(interval: pingInterval)
    }
    /// The close code of a node that shuts down (1012, "service restart"): pages reconnect
    /// at once, spread over a second, and the load balancer sends them to another node.
    static package let restartCloseCode = WebSocketErrorCode.unknown(1012)
    /// Largest frame and message a browser may send (pages send only a small ack).
    static package let maxInboundSize = 4096
    /// Inbound messages a browser may send in a burst, and per second after it; one more
    /// closes its connection with 1008 (policy violation).
    static package let inboundBurst = 20.0
    static package let inboundPerSecond = 2.0

    /// Why a browser may not connect now, as the error the HTTP route `GET /ws` answers.
    /// `origin` and `host` are the handshake's headers (see `allows(origin:host:)`), `client`
    /// the address it is counted by. (A seat it could take is given back at once.)
    package func refusal(token: String?, origin: String? = nil, host: String? = nil, client: String? = nil) async -> ExamBellError? {
        guard case .failure(let refusal) = await admission(token: token, origin: origin, host: host, client: client) else { return nil }
        return refusal
    }

    /// A browser the node takes: its seat (its session, and the address it is counted by).
    package struct Admitted: Sendable {
        package var seat: SocketHub.Seat
    }

    /// The address a handshake from `peer` is counted by, when the node counts addresses.
    package func client(peer: String?, forwardedFor: [String]) -> String? {
        guard maxConnectionsPerAddress != nil else { return nil }
        return trustedProxies.client(peer: peer, forwardedFor: forwardedFor)
    }

    /// The seat of a `GET /ws?token=` WebSocket handshake this node admits now, or why not
    /// (nil: it is no handshake to `/ws`). A refused browser is not upgraded; its connection
    /// answers with the error (`BrowserChannel`), which is decided here once: a ticket is
    /// spent by its first look.
    package func admit(uri: String, method: NIOHTTP1.HTTPMethod, origin: String?, host: String?, client: String?) async
        -> Result<Admitted, ExamBellError>?
    {
        let uri = URI(uri)
        guard uri.path == "/ws", method == .GET else { return nil }
        let (credential, isTicket) = Self.credential(of: uri)
        return await admission(token: credential, origin: origin, host: host, client: client).map { seat in
            metrics.admitted(byTicket: isTicket)
            return Admitted(seat: seat)
        }
    }

    /// What a handshake shows: `?ticket=` (the pages', `SessionTokens.ticket`) or DESIGN's
    /// `?token=` (a session token).
    static package func credential(of uri: URI) -> (value: String?, isTicket: Bool) {
        if let ticket = uri.queryParameters.get("ticket") { return (ticket, true) }
        return (uri.queryParameters.get("token"), false)
    }

    /// The seat of a handshake this node takes now (its token verified once, its budgets
    /// reserved in one step), or why not.
    private func admission(token: String?, origin: String?, host: String?, client: String?) async -> Result<SocketHub.Seat, ExamBellError> {
        guard origins.allows(origin: origin, host: host) else {
            return .failure(
                ExamBellError(
                    status: 403, code: "origin_not_allowed",
                    message:
                        "WebSocket connections are taken from ExamBell's own pages only (\(origins.allowedOrigins.sorted().joined(separator: ", ")))."
                ))
        }
        let session: Session
        do {
            session = try await sessions.verify(token, for: .socket)
        } catch {
            return .failure(error)
        }
        if hub.isDraining {
            return .failure(ExamBellError(status: 503, code: "socket_node_draining", message: "This socket node is shutting down; try another node."))
        }
        let limits = SocketHub.SeatLimits(node: maxConnections, perSession: maxConnectionsPerSession, perAddress: maxConnectionsPerAddress)
        switch hub.reserve(session, address: client, limits: limits) {
        case .success(let seat):
            return .success(seat)
        case .failure(.session):
            // One person's token opens a few connections (a reload, a second tab), never the node.
            return .failure(
                ExamBellError(
                    status: 429, code: "budget_exceeded",
                    message:
                        "Budget exceeded: sockets per session (\(maxConnectionsPerSession) open on this node already); close a tab."
                ))
        case .failure(.address):
            return .failure(
                ExamBellError(
                    status: 429, code: "budget_exceeded",
                    message: "Budget exceeded: sockets per address (\(maxConnectionsPerAddress ?? 0) open on this node already)."
                ))
        case .failure(.node):
            return .failure(
                ExamBellError(
                    status: 503, code: "socket_node_full",
                    message: "This socket node holds its maximum of \(maxConnections) browsers; try another node."
                ))
        }
    }

    /// `GET /ws` that was not upgraded: the reason, with its status (401, 503, or 400 for a
    /// request that is no WebSocket handshake).
    package func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get("ws") { request, _ -> Response in
            let refusal = await refusal(
                token: Self.credential(of: request.uri).value, origin: request.headers[.origin], host: request.head.authority
            )
            if let refusal { throw refusal }
            throw ExamBellError.badRequest(code: "websocket_required", "GET /ws is a WebSocket endpoint: open it with a WebSocket handshake.")
        }
    }

    /// Records what a candidate's page said: its receipts go to the state store (final sync
    /// copies the end's into the DB).
    package func record(_ message: BrowserMessage, from id: UInt64, session: Session) async {
        let examId = session.examId
        let candidateId = session.subject
        do {
            switch message {
            case .endAcknowledged:
                guard hub.acknowledge(id, examId: examId) else { return }
                try await state.recordAck(examId: examId, candidateId: candidateId, at: .now())
            case .locked(let clockOffsetMs):
                guard let end = hub.markLocked(id, examId: examId) else { return }
                metrics.locked(after: end)
                try await state.recordLock(examId: examId, candidateId: candidateId, at: .now())
                if let clockOffsetMs { try await state.recordClockOffset(examId: examId, candidateId: candidateId, ms: clockOffsetMs) }
            case .timeAcknowledged:
                guard let end = hub.timeSent(id, examId: examId) else { return }
                try await state.recordTimeAck(examId: examId, candidateId: candidateId, end: end)
            case .announcementAcknowledged(let announcementId):
                try await state.recordAnnouncementSeen(examId: examId, announcementId: announcementId, candidateId: candidateId, at: .now())
            }
        } catch {
            logger.warning("could not record a browser's receipt", metadata: ["examId": "\(examId)"])
        }
    }

    /// A browser that connects after the end (the exam's, or its candidate's own) learns it
    /// from the state store, in one round trip.
    package func tellIfEnded(_ session: Session) async {
        let examId = session.examId
        do {
            let keys = [PlanStateValue.key(examId)] + (session.role == .candidate ? [CandidateStateValue.key(session.subject)] : [])
            let values = try await state.get(keys)
            if let plan = values[0].flatMap(PlanStateValue.init(json:)), plan.status == .completed, let end = plan.endDatetime {
                hub.broadcast(ExamEndSocketMessage(examId: examId, timestamp: end))
            } else if values.count > 1, let mine = values[1].flatMap(CandidateStateValue.init(json:)), mine.status == .completed,
                let end = mine.lastActiveTime
            {
                hub.endCandidates(CandidateEndEvent(examId: examId, candidateIds: [session.subject], timestamp: end))
            }
        } catch {
            logger.warning("state store unreachable while checking a late joiner", metadata: ["examId": "\(examId)"])
        }
    }
}
