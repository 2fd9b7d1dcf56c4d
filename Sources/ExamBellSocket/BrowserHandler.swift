import ExamBellCore
import ExamBellRuntime
import Logging
import NIOCore
import NIOWebSocket

/// One browser's WebSocket, served on its channel's event loop (the tail of the pipeline that
/// `BrowserChannel` builds): it joins the browser to its exam's room, takes its messages
/// (acks and receipts, with a rate limit), answers pings, pings it and drops it when it
/// stops answering, and closes it.
///
/// Closing never waits on the browser: a close frame is written only to a channel that can
/// take it, and the channel is closed when the browser answers the close or `closeGrace`
/// later, whichever comes first; a write's completion is never waited for.
final package class BrowserHandler: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = WebSocketFrame
    package typealias OutboundOut = WebSocketFrame

    /// How long a browser has to answer our close frame before its connection is closed.
    static package let closeGrace: TimeAmount = .seconds(1)

    /// Its place on the node (its session, the address it is counted by), given back when it leaves.
    package let seat: SocketHub.Seat
    package var session: Session { seat.session }
    package let server: SocketServer
    private var context: ChannelHandlerContext?
    /// The frame encoder's place in the pipeline: pre-encoded frames are written from there.
    private var encoder: ChannelHandlerContext?
    /// The browser's id in the hub, once joined.
    private var id: UInt64?
    private var allowance = SocketServer.inboundBurst
    private var lastMessage = NIODeadline.now()
    /// A message arriving in fragments: its first opcode and the bytes so far.
    private var fragments: (opcode: WebSocketOpcode, data: ByteBuffer)?
    /// The event loop whose ping round holds this browser, while it does.
    private var pingLoop: (any EventLoop)?
    private var awaitingPong = false
    /// Whether a close frame was sent (by us, or in answer to the browser's).
    private var closing = false

    package init(seat: SocketHub.Seat, server: SocketServer) {
        self.seat = seat
        self.server = server
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        encoder = try? context.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        id = server.hub.join(seat, browser: BrowserLink(channel: context.channel, handler: bound))
        server.logger.debug("browser joined", metadata: ["examId": "\(session.examId)", "role": "\(session.role.rawValue)"])
        if !server.hub.hasEnded(session.examId) {
            let (server, session) = (self.server, self.session)
            Task { await server.tellIfEnded(session) }
        }
        server.pings.join(self, on: context.eventLoop)
        pingLoop = context.eventLoop
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        leave()
        self.context = nil
        encoder = nil
    }

    package func channelInactive(context: ChannelHandlerContext) {
        leave()
        context.fireChannelInactive()
    }

    private func leave() {
        if let pingLoop {
            server.pings.leave(self, on: pingLoop)
            self.pingLoop = nil
        }
        guard let id else { return seat.release() }
        self.id = nil
        server.hub.leave(id, seat: seat)
        server.logger.debug("browser left", metadata: ["examId": "\(session.examId)", "role": "\(session.role.rawValue)"])
    }

    // MARK: What the hub writes

    /// Writes a pre-encoded server frame (header and payload); a browser that cannot take it
    /// now (its client stopped reading and NIO's buffer passed its high-water mark) is cut.
    package func write(encoded bytes: ByteBuffer) {
        guard let context, let encoder, !closing, context.channel.isActive else { return }
        guard context.channel.isWritable else {
            server.logger.notice("browser not reading; closing it", metadata: ["examId": "\(session.examId)"])
            context.close(promise: nil)
            return
        }
        encoder.writeAndFlush(NIOAny(bytes), promise: nil)
    }

    /// Starts the close handshake with `code` (bounded, see the type's comment).
    package func close(code: WebSocketErrorCode, reason: String = "") {
        guard let context, !closing else { return }
        closing = true
        if context.channel.isWritable {
            var data = context.channel.allocator.buffer(capacity: 2 + reason.utf8.count)
            data.write(webSocketErrorCode: code)
            data.writeString(reason)
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: data)), promise: nil)
            let channel = context.channel
            context.eventLoop.scheduleTask(in: Self.closeGrace) { channel.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    // MARK: What the browser sends

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        // RFC 6455 §5.1: a client masks every frame; an unmasked one is a protocol error.
        guard frame.maskKey != nil else { return close(code: .protocolError, reason: "unmasked client frame") }
        // §5.2: RSV bits are for negotiated extensions, and this server negotiates none.
        guard !frame.rsv1, !frame.rsv2, !frame.rsv3 else { return close(code: .protocolError, reason: "RSV bit without an extension") }
        switch frame.opcode {
        case .connectionClose:
            if !closing {
                // The browser closes: answer with its code (an empty close when it gave none), then go.
                closing = true
                var echo = frame.unmaskedData
                let code = echo.readableBytes >= 2 ? echo.readSlice(length: 2) : nil
                context.writeAndFlush(
                    wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: code ?? context.channel.allocator.buffer(capacity: 0))),
                    promise: nil
                )
            }
            context.close(promise: nil)
        case .ping:
            guard !closing else { return }
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .pong:
            awaitingPong = false
        case .text, .binary:
            guard !closing else { return }
            guard fragments == nil else { return close(code: .protocolError, reason: "a new message inside a fragmented one") }
            if frame.fin {
                received(frame.opcode, frame.unmaskedData)
            } else {
                fragments = (frame.opcode, frame.unmaskedData)
            }
        case .continuation:
            guard !closing else { return }
            guard var message = fragments else { return close(code: .protocolError, reason: "a continuation without a message") }
            var more = frame.unmaskedData
            guard message.data.readableBytes + more.readableBytes <= SocketServer.maxInboundSize else {
                fragments = nil
                return close(code: .messageTooLarge, reason: "message over \(SocketServer.maxInboundSize) bytes")
            }
            message.data.writeBuffer(&more)
            if frame.fin {
                fragments = nil
                received(message.opcode, message.data)
            } else {
                fragments = message
            }
        default:
            close(code: .protocolError, reason: "unknown opcode")
        }
    }

    /// A whole message: counted against the rate limit, then, from a candidate, recorded.
    private func received(_ opcode: WebSocketOpcode, _ data: ByteBuffer) {
        let now = NIODeadline.now()
        let elapsed = Double((now - lastMessage).nanoseconds) / 1e9
        lastMessage = now
        allowance = min(SocketServer.inboundBurst, allowance + SocketServer.inboundPerSecond * elapsed)
        guard allowance >= 1 else {
            server.logger.notice("browser sent too many messages; closing it", metadata: ["examId": "\(session.examId)"])
            return close(code: .policyViolation, reason: "too many messages")
        }
        allowance -= 1
        var text: String?
        if opcode == .text {
            // RFC 6455 §8.1: a text message is UTF-8; one that is not closes with 1007.
            guard let valid = String(validating: data.readableBytesView, as: UTF8.self) else {
                return close(code: .dataInconsistentWithMessage, reason: "text that is not UTF-8")
            }
            text = valid
        }
        guard session.role == .candidate, let text, let id, let message = BrowserMessage(json: text, examId: session.examId) else {
            return
        }
        let (server, session) = (self.server, self.session)
        Task { await server.record(message, from: id, session: session) }
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)  // the browser went without a close frame
            return
        }
        if event is ChannelShouldQuiesceEvent {
            // The HTTP server stops, and waits for every connection to close: one that joined
            // after the drain's pass (admitted just before it) is told to reconnect too.
            close(code: SocketServer.restartCloseCode, reason: "node restarting; reconnect")
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? NIOWebSocketError {
            // The decoder stopped at a frame it will not take (over 4 KiB, bad length): it reads
            // nothing more, so the browser is told why and let go.
            close(code: error == .invalidFrameLength ? .messageTooLarge : .protocolError)
        } else {
            context.close(promise: nil)
        }
    }

    // MARK: Keep-alive

    /// Every ping interval (its loop's `PingRounds` tick): a browser that did not answer the
    /// last ping is dropped; else pinged.
    func pingTick() {
        guard let context, !closing else { return }
        guard !awaitingPong else {
            server.logger.debug("browser missed its pong; dropping it", metadata: ["examId": "\(session.examId)"])
            context.close(promise: nil)
            return
        }
        awaitingPong = true
        context.writeAndFlush(
            wrapOutboundOut(WebSocketFrame(fin: true, opcode: .ping, data: context.channel.allocator.buffer(capacity: 0))), promise: nil)
    }
}

/// How the hub reaches one browser: its channel and, on the channel's event loop, its handler.
package struct BrowserLink: Sendable {
    package let channel: any Channel
    package let handler: NIOLoopBound<BrowserHandler>
}
