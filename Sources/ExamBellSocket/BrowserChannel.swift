import ExamBellCore
import ExamBellHTTP
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket

/// The socket server's own pipeline: every connection of a node that serves browsers.
///
/// A connection starts as HTTP/1.1. A `GET /ws?token=` WebSocket handshake that the socket
/// server admits (`SocketServer.admit`) is upgraded by swift-nio's own WebSocket upgrader and
/// frame codec, and the browser is then served by one `BrowserHandler` on its channel's event
/// loop: no task, no async stream, no buffer of its own per browser. Every other request goes
/// to the router; a handshake the server refuses is answered here with its JSON reason (401,
/// 503) and the connection closed (NIO's upgrader has consumed its request head, so the
/// router never sees it). A `ConnectionGuard` comes first (every request's head and body
/// in time and size, connections per address and in all) until the connection is upgraded. The pipeline of an admitted browser, head to tail:
/// `WebSocketFrameEncoder`, `WebSocketFrameDecoder` (4 KiB frames at most), `BrowserHandler`.
package struct BrowserChannel: ServerChildChannel, HTTPChannelHandler {
    /// What a connection became: a browser (served by its handler from now on) or HTTP.
    package enum Upgrade: Sendable {
        case browser
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        /// A handshake the server did not admit.
        case refused(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, Attempt)
    }

    /// A WebSocket handshake's target and the headers admission looks at.
    package struct Attempt: Sendable {
        package var uri: String
        package var origin: String?
        package var host: String?
        /// RFC 6455 §4.2.1: a `Sec-WebSocket-Key` and `Sec-WebSocket-Version: 13`. NIO's
        /// upgrader refuses a handshake without them before asking `shouldUpgrade` (it lets
        /// one without `Connection: Upgrade` in, as browsers always send it).
        package var wellFormed = true
        /// `Upgrade: websocket`, not another protocol (`h2c`) this server does not speak.
        package var isWebSocket = true
        /// The `X-Forwarded-For` values (read only from a trusted proxy).
        package var forwardedFor: [String]
        /// Why the socket server refused it, once it was asked.
        package var refusal: ExamBellError?

        package init(_ head: HTTPRequestHead) {
            uri = head.uri
            origin = head.headers["Origin"].first
            host = head.headers["Host"].first
            isWebSocket = head.headers["Upgrade"].contains { $0.lowercased().contains("websocket") }
            wellFormed = !(head.headers["Sec-WebSocket-Key"].first ?? "").isEmpty && head.headers["Sec-WebSocket-Version"] == ["13"]
            forwardedFor = head.headers["X-Forwarded-For"]
        }
    }

    package struct Value: ServerChildChannelValue {
        package let upgrade: EventLoopFuture<Upgrade>
        package let channel: any Channel
    }

    package let responder: HTTPChannelHandler.Responder
    package let server: SocketServer
    package let http1: HTTP1Channel.Configuration
    package let guardLimits: ConnectionGuard.Limits
    package let budgets: ConnectionBudgets

    package init(
        responder: @escaping HTTPChannelHandler.Responder, server: SocketServer, http1: HTTP1Channel.Configuration,
        guardLimits: ConnectionGuard.Limits, budgets: ConnectionBudgets
    ) {
        self.responder = responder
        self.server = server
        self.http1 = http1
        self.guardLimits = guardLimits
        self.budgets = budgets
    }

    package func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let connectionGuard = ConnectionGuard(limits: guardLimits, budgets: budgets, answersParseErrors: true)
            // The browser the handshake admitted, from `shouldUpgrade` to the handler.
            let admitted = NIOLoopBoundBox<SocketServer.Admitted?>(nil, eventLoop: channel.eventLoop)
            // A handshake that was tried (target, Origin, Host), for the answer to a refused one.
            let attempted = NIOLoopBoundBox<Attempt?>(nil, eventLoop: channel.eventLoop)
            let server = self.server
            let upgrader = NIOTypedWebSocketServerUpgrader<Upgrade>(
                maxFrameSize: SocketServer.maxInboundSize,
                // Protocol errors are the handler's: NIO's own error handler waits for its close
                // frame's write before closing, which a browser that stopped reading never lets end.
                enableAutomaticErrorHandling: false,
                shouldUpgrade: { channel, head in
                    let attempt = attempted.value ?? Attempt(head)
                    let client = server.client(peer: channel.remoteAddress?.ipAddress, forwardedFor: attempt.forwardedFor)
                    let promise = channel.eventLoop.makePromise(of: Result<SocketServer.Admitted, ExamBellError>?.self)
                    promise.completeWithTask {
                        await server.admit(uri: attempt.uri, method: head.method, origin: attempt.origin, host: attempt.host, client: client)
                    }
                    // Back on the channel's event loop: the boxes are its own.
                    return promise.futureResult.map { result in
                        switch result {
                        case .success(let browser):
                            admitted.value = browser
                            return HTTPHeaders()
                        case .failure(let refusal):
                            var refused = attempt
                            refused.refusal = refusal
                            attempted.value = refused
                            return nil
                        case nil:
                            return nil
                        }
                    }
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        guard let browser = admitted.value else { throw NIOWebSocketUpgradeError.unsupportedWebSocketTarget }
                        // HTTP's phases are over: the guard stops timing, its reporter goes.
                        try channel.pipeline.syncOperations.handler(type: ConnectionGuard.self).upgraded()
                        channel.pipeline.syncOperations.removeHandler(
                            context: try channel.pipeline.syncOperations.context(handlerType: RequestPhases.self), promise: nil)
                        try channel.pipeline.syncOperations.addHandler(
                            BrowserHandler(seat: browser.seat, server: server)
                        )
                        return Upgrade.browser
                    }
                }
            )
            let http1 = self.http1
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<Upgrade>(
                upgradeConfiguration: NIOTypedHTTPServerUpgradeConfiguration(
                    upgraders: [upgrader],
                    notUpgradingCompletionHandler: { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                            try channel.pipeline.syncOperations.addHandlers(http1.additionalChannelHandlers())
                            try channel.pipeline.syncOperations.addHandler(
                                HTTPConnectionStateHandler(idleTimeout: http1.idleTimeout.map { .init($0) }, logger: logger)
                            )
                            let http = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true)
                            )
                            if let attempt = attempted.value { return Upgrade.refused(http, attempt) }
                            return Upgrade.http(http)
                        }
                    }
                )
            )
            configuration.enablePipelining = false  // HTTP is pipelined by NIOAsyncChannel
            configuration.enableErrorHandling = false  // Hummingbird answers HTTP parse errors
            configuration.enableResponseHeaderValidation = false  // Swift HTTP Types validate already
            let future = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            let upgradeHandler = try channel.pipeline.syncOperations.handler(type: NIOTypedHTTPServerUpgradeHandler<Upgrade>.self)
            try channel.pipeline.syncOperations.addHandler(HandshakeWatcher(attempted: attempted), position: .before(upgradeHandler))
            try RequestPhases.install(connectionGuard, on: channel)
            return Value(upgrade: future, channel: channel)
        }
    }

    package func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.upgrade.get() {
            case .browser:
                return  // its handler serves it from here, on its event loop
            case .http(let channel):
                await handleHTTP(asyncChannel: channel, logger: logger)
            case .refused(let channel, let attempt):
                try await refuse(channel, attempt, peer: value.channel.remoteAddress?.ipAddress)
            }
        } catch {
            logger.trace("connection ended before its first request was read", metadata: ["error": "\(error)"])
            value.channel.close(promise: nil)
        }
    }

    /// Answers a handshake that was not admitted with the reason, as JSON, and closes.
    private func refuse(_ channel: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, _ attempt: Attempt, peer: String?) async throws {
        let target = URI(attempt.uri)
        let error: ExamBellError
        if !attempt.isWebSocket {
            error = ExamBellError(
                status: 400, code: "upgrade_not_supported", message: "This server speaks HTTP/1.1, and WebSocket at /ws; no other upgrade."
            )
        } else if target.path != "/ws" {
            error = ExamBellError(status: 404, code: "not_found", message: "There is no WebSocket endpoint at \(target.path).")
        } else if !attempt.wellFormed {
            error = ExamBellError(
                status: 400, code: "invalid_websocket_handshake",
                message: "A WebSocket handshake needs a Sec-WebSocket-Key and Sec-WebSocket-Version: 13 (RFC 6455)."
            )
        } else if let refusal = attempt.refusal {
            error = refusal
        } else if let refusal = await server.refusal(
            token: SocketServer.credential(of: target).value, origin: attempt.origin, host: attempt.host,
            client: server.client(peer: peer, forwardedFor: attempt.forwardedFor)
        ) {
            error = refusal
        } else {
            error = ExamBellError(status: 503, code: "service_unavailable", message: "The socket node could not take the browser now; try again.")
        }
        let body = ByteBuffer(string: APIErrorMiddleware<ExamBellRequestContext>.body(error))
        var head = HTTPResponse(
            status: .init(code: error.status),
            headerFields: [.contentType: "application/json; charset=utf-8", .contentLength: "\(body.readableBytes)", .connection: "close"]
        )
        if attempt.isWebSocket, !attempt.wellFormed { head.headerFields[.secWebSocketVersion] = "13" }
        try await channel.executeThenClose { _, outbound in
            try await outbound.write(contentsOf: [.head(head), .body(body), .end(nil)])
        }
    }
}

/// Notes the first request head of a connection when it asks for an upgrade (an `Upgrade`
/// header), on its way to NIO's upgrade handler, then leaves the
/// pipeline. When NIO does not upgrade such a request it drops its head, and the HTTP path
/// then saw a request without one and closed the connection without a word; with the head
/// noted, a handshake NIO refuses before `shouldUpgrade` (no `Sec-WebSocket-Key`, another
/// version than 13) and an upgrade to another protocol are answered with their 400.
final package class HandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias InboundOut = HTTPServerRequestPart

    package let attempted: NIOLoopBoundBox<BrowserChannel.Attempt?>

    package init(attempted: NIOLoopBoundBox<BrowserChannel.Attempt?>) {
        self.attempted = attempted
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) {
            if !head.headers["Upgrade"].isEmpty {
                attempted.value = BrowserChannel.Attempt(head)
            }
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireChannelRead(data)
    }
}
