import ExamBellCore
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket

/// A socket node's connections: HTTP/1 for its routes and, at `GET /ws?token=`, the
/// WebSocket of a browser — on plain NIO channel handlers, with no task per browser.
///
/// A browser's connection is a channel with the WebSocket codec and a `BrowserChannel`
/// handler: it joins the hub when added, answers pings, takes acks (rate-limited), pings
/// the browser and drops it when a pong does not come, and leaves the hub when the channel
/// closes. Broadcasts write to the channel directly (`SocketHub`). A refused upgrade falls
/// through to the HTTP route `GET /ws`, which answers with the reason.
struct SocketChildChannel: ServerChildChannel, HTTPChannelHandler {
    enum Outcome: Sendable {
        case webSocket
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        /// A WebSocket handshake that was refused: answered here, with the reason.
        case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, ExamBellError)
    }

    struct Value: ServerChildChannelValue {
        let outcome: EventLoopFuture<Outcome>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let server: SocketServer
    let pingInterval: Duration

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let admitted = NIOLoopBoundBox<Result<Session, ExamBellError>?>(nil, eventLoop: channel.eventLoop)
            let server = self.server
            let pingInterval = self.pingInterval
            let upgrader = NIOTypedWebSocketServerUpgrader<Outcome>(
                maxFrameSize: SocketServer.maxInboundSize,
                shouldUpgrade: { channel, head in
                    let uri = URI(head.uri)
                    guard uri.path == "/ws" else { return channel.eventLoop.makeSucceededFuture(nil) }
                    let token = uri.queryParameters.get("token")
                    return channel.eventLoop.makeFutureWithTask { await server.admit(token: token) }.map { result in
                        admitted.value = result
                        if case .success = result { return HTTPHeaders() }
                        return nil
                    }
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        guard case .success(let session) = admitted.value else { throw ChannelError.inappropriateOperationForState }
                        try channel.pipeline.syncOperations.addHandler(
                            BrowserChannel(session: session, server: server, pingInterval: .nanoseconds(Int64(pingInterval.nanoseconds)))
                        )
                        return .webSocket
                    }
                }
            )
            let upgrade = NIOTypedHTTPServerUpgradeConfiguration<Outcome>(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        try channel.pipeline.syncOperations.addHandler(HTTPConnectionStateHandler(idleTimeout: nil, logger: logger))
                        let http = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true)
                        )
                        if case .failure(let error) = admitted.value { return .refused(http, error) }
                        return .http(http)
                    }
                }
            )
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<Outcome>(upgradeConfiguration: upgrade)
            configuration.enablePipelining = false
            configuration.enableErrorHandling = false
            configuration.enableResponseHeaderValidation = false
            let outcome = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            return Value(outcome: outcome, channel: channel)
        }
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.outcome.get() {
            case .webSocket:
                return  // the channel lives on in its handlers; no task waits for it
            case .http(let channel):
                await handleHTTP(asyncChannel: channel, logger: logger)
            case .refused(let channel, let error):
                // NIO does not hand a refused handshake on to the router: say why here, and close.
                try await channel.executeThenClose { _, outbound in
                    let body = ByteBuffer(string: APIErrorMiddleware<BasicRequestContext>.body(error))
                    let head = HTTPResponse(
                        status: .init(code: error.status),
                        headerFields: [.contentType: "application/json; charset=utf-8", .contentLength: "\(body.readableBytes)", .connection: "close"]
                    )
                    try await outbound.write(contentsOf: [.head(head), .body(body), .end(nil)])
                }
            }
        } catch {
            logger.debug("connection setup failed", metadata: ["error": "\(error)"])
        }
    }
}

extension Duration {
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}

/// One browser's WebSocket, handled on its event loop.
final class BrowserChannel: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let session: Session
    let server: SocketServer
    let pingInterval: TimeAmount
    private var id: UInt64?
    private var allowance = SocketServer.inboundBurst
    private var last = NIODeadline.now()
    private var awaitingPong = false
    private var pinger: RepeatedTask?
    private var closing = false

    init(session: Session, server: SocketServer, pingInterval: TimeAmount) {
        self.session = session
        self.server = server
        self.pingInterval = pingInterval
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let contextBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        id = server.joined(session, channel: channel) {
            channel.eventLoop.execute {
                loopBound.value.close(contextBound.value, code: SocketServer.restartCloseCode, reason: "node restarting; reconnect")
            }
        }
        pinger = context.eventLoop.scheduleRepeatedTask(initialDelay: pingInterval, delay: pingInterval) { _ in
            let handler = loopBound.value
            let context = contextBound.value
            if handler.awaitingPong {
                handler.server.logger.debug("browser missed its pong; dropped", metadata: ["examId": "\(handler.session.examId)"])
                context.close(promise: nil)
            } else {
                handler.awaitingPong = true
                context.writeAndFlush(handler.wrapOutboundOut(WebSocketFrame(fin: true, opcode: .ping, data: ByteBuffer(string: "exambell"))), promise: nil)
            }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        leave()
    }

    func channelInactive(context: ChannelHandlerContext) {
        leave()
        context.fireChannelInactive()
    }

    private func leave() {
        pinger?.cancel()
        pinger = nil
        if let id {
            server.left(id, session: session)
            self.id = nil
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .pong:
            awaitingPong = false
        case .ping:
            guard frame.fin else { return close(context, code: .protocolError, reason: "fragmented ping") }
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            // Answer the browser's close with the same code, then close.
            var data = frame.unmaskedData
            let code = data.readWebSocketErrorCode() ?? .normalClosure
            close(context, code: code, reason: nil)
        case .text, .binary:
            awaitingPong = false  // any traffic shows the browser is alive
            let now = NIODeadline.now()
            allowance = min(
                SocketServer.inboundBurst, allowance + SocketServer.inboundPerSecond * Double((now - last).nanoseconds) / 1e9
            )
            last = now
            guard allowance >= 1 else {
                server.logger.notice("browser sent too many messages; closing it", metadata: ["examId": "\(session.examId)"])
                return close(context, code: .policyViolation, reason: "too many messages")
            }
            allowance -= 1
            guard frame.fin else { return close(context, code: .unacceptableData, reason: "fragmented messages are not taken") }
            guard frame.opcode == .text, let id else { return }
            let data = frame.unmaskedData
            server.received(data.getString(at: data.readerIndex, length: data.readableBytes) ?? "", from: id, session: session)
        default:
            close(context, code: .protocolError, reason: "unexpected frame")
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case ChannelEvent.inputClosed:
            // The server allows half-closure; a browser that stopped sending is gone.
            context.close(promise: nil)
        case is ChannelShouldQuiesceEvent:
            close(context, code: SocketServer.restartCloseCode, reason: "node restarting; reconnect")
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        close(context, code: .unexpectedServerError, reason: nil)
    }

    /// Sends a close frame with `code` and closes the channel once it is written.
    func close(_ context: ChannelHandlerContext, code: WebSocketErrorCode, reason: String?) {
        guard !closing else { return }
        closing = true
        var data = context.channel.allocator.buffer(capacity: 2 + (reason?.utf8.count ?? 0))
        data.write(webSocketErrorCode: code)
        if let reason { data.writeString(reason) }
        let frame = WebSocketFrame(fin: true, opcode: .connectionClose, data: data)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(frame)).whenComplete { _ in channel.close(promise: nil) }
    }
}
