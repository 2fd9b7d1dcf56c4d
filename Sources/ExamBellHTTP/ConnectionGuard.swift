import ExamBellCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Keeps a node answering when clients open connections and never finish a request.
///
/// The first handler of every connection, for its whole life; with a `RequestPhases` after
/// the HTTP decoder that tells it where each request is. Every phase has a deadline and a
/// size, whether or not a route reads the body:
/// - accept: one address holds at most `maxOpenPerAddress` HTTP connections (else `429`);
///   the listener at most `maxOpen` in all: past it the oldest HTTP connection is shed (see
///   `ConnectionBudgets`), and with only WebSockets open the new one gets `503 node_busy`;
/// - each request's head must arrive within `headerTimeout` of its first byte (else `408`) and
///   fit in `maxHeaderBytes` counted to its blank line however it is split (else `431`), and
///   one address may have at most `maxPendingPerAddress` connections waiting for a head (else
///   `429`);
/// - each request's body must have arrived within `bodyTimeout` of its head, read by the route
///   or drained after its answer (else the connection is closed);
/// - between requests the HTTP idle timeout (120 s) closes it;
/// - a request line or head the HTTP parser refuses before the first request is answered `400`
///   here when the server behind does not answer it itself (the upgradable pipeline).
/// A WebSocket, once upgraded, is no longer timed here (pings and the socket node's budgets
/// take over) but still counts in the listener's total. A trusted proxy's connections are
/// not counted per address.
final package class ConnectionGuard: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer

    package typealias Limits = ConnectionLimits

    package enum Phase {
        /// Nothing read of the next request yet (also before the first).
        case idle
        /// A head is arriving; `bytes` of it so far.
        case head
        /// The head is in; the body is arriving (or being drained).
        case body
        /// An upgraded WebSocket: not timed here.
        case upgraded
        /// Refused or closed.
        case done
    }

    package let limits: Limits
    package let budgets: ConnectionBudgets
    /// Whether this guard answers a parse error before the first head with `400` (the
    /// upgradable pipeline, where no one else does).
    package let answersParseErrors: Bool
    private var phase = Phase.idle
    /// Its id in the listener's budgets, once counted.
    private var counted: UInt64?
    /// The address counted per address (nil for a trusted proxy, or before `start`).
    private var address: String?
    private var waitingForHead = false
    private var timer: Scheduled<Void>?
    private var bytes = 0
    /// The last four bytes seen, oldest in the high byte: `\r\n\r\n` is `0x0D0A0D0A`, also
    /// when it is split across reads.
    private var lastFour: UInt32 = 0
    private var heads = 0
    private var context: ChannelHandlerContext?

    package init(limits: Limits, budgets: ConnectionBudgets, answersParseErrors: Bool = false) {
        self.limits = limits
        self.budgets = budgets
        self.answersParseErrors = answersParseErrors
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context) }
    }

    package func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard counted == nil, phase != .done else { return }
        let peer = context.channel.remoteAddress?.ipAddress ?? "unknown"
        let address = limits.trustedProxies.trusts(peer) ? nil : peer
        switch budgets.open(context.channel, address: address, limit: limits.maxOpenPerAddress) {
        case .failure(.node):
            phase = .done
            return refuse(context, 503, "node_busy", "This node holds all the connections it can; try again shortly.")
        case .failure(.address):
            phase = .done
            return refuse(
                context, 429, "budget_exceeded",
                "Budget exceeded: connections per address (\(limits.maxOpenPerAddress) open to this node already)."
            )
        case .success(let id):
            counted = id
            self.address = address
        }
        // The first head's clock runs from the accept: a connection that sends nothing is
        // also one waiting for its head.
        beginHead(context)
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch phase {
        case .body, .upgraded:
            return context.fireChannelRead(data)
        case .done:
            return
        case .idle:
            beginHead(context)
        case .head:
            break
        }
        guard phase == .head else { return }
        let buffer = unwrapInboundIn(data)
        var headBytes = 0
        var complete = false
        for byte in buffer.readableBytesView {
            headBytes += 1
            lastFour = lastFour << 8 | UInt32(byte)
            if lastFour == 0x0D0A_0D0A {
                complete = true
                break
            }
        }
        bytes += headBytes
        if bytes > limits.maxHeaderBytes {
            phase = .done
            cancelTimer()
            return refuse(context, 431, "headers_too_large", "The request's headers are larger than \(limits.maxHeaderBytes) bytes.")
        }
        if complete { beginBody(context) }
        context.fireChannelRead(data)
    }

    /// The next request's head starts: its clock and its count.
    private func beginHead(_ context: ChannelHandlerContext) {
        phase = .head
        bytes = 0
        lastFour = 0
        if let address {
            guard budgets.enterHead(address, limit: limits.maxPendingPerAddress) else {
                phase = .done
                return refuse(
                    context, 429, "budget_exceeded",
                    "Budget exceeded: unfinished connections per address (\(limits.maxPendingPerAddress) still sending a request head).")
            }
            waitingForHead = true
        }
        arm(context, limits.headerTimeout) { guard_, context in
            guard_.phase = .done
            guard_.refuse(context, 408, "request_timeout", "The request's headers did not arrive in time.")
        }
    }

    /// The head is in (its blank line seen here, or the decoder reported it): the body's clock.
    private func beginBody(_ context: ChannelHandlerContext) {
        leaveHead()
        heads += 1
        phase = .body
        arm(context, limits.bodyTimeout) { guard_, context in
            guard_.phase = .done
            context.close(promise: nil)
        }
    }

    private func arm(_ context: ChannelHandlerContext, _ delay: TimeAmount, _ fire: @escaping (ConnectionGuard, ChannelHandlerContext) -> Void) {
        cancelTimer()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = bound.value
            guard context.channel.isActive else { return }
            fire(handler, context)
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
    }

    private func leaveHead() {
        if waitingForHead, let address { budgets.leaveHead(address) }
        waitingForHead = false
    }

    // MARK: What `RequestPhases` reports

    /// The decoder has a request's head (whether or not its blank line was seen here: a head
    /// that came in with the previous request's body).
    package func decodedHead() {
        guard let context, phase == .head || phase == .idle else { return }
        beginBody(context)
    }

    /// The decoder has a request's end: its body is all in.
    package func decodedEnd() {
        guard phase == .body else { return }
        cancelTimer()
        phase = .idle
    }

    /// The connection became a WebSocket.
    package func upgraded() {
        guard phase != .done, phase != .upgraded else { return }
        cancelTimer()
        leaveHead()
        phase = .upgraded
        if let counted { budgets.upgraded(counted, address: address) }
    }

    /// The decoder refused the bytes.
    package func parseError() {
        guard let context, phase != .done else { return }
        let first = heads == 0 || (heads == 1 && phase == .body)
        phase = .done
        cancelTimer()
        leaveHead()
        if answersParseErrors, first {
            refuse(context, 400, "bad_request", "The request could not be read as HTTP/1.1.")
        }
    }

    package func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        finish()
        self.context = nil
    }

    private func finish() {
        cancelTimer()
        leaveHead()
        if let id = counted {
            counted = nil
            budgets.close(id, address: address, upgraded: phase == .upgraded)
        }
        if phase != .upgraded { phase = .done }
    }

    /// Answers with the JSON error and closes; nothing further is read.
    private func refuse(_ context: ChannelHandlerContext, _ status: Int, _ code: String, _ message: String) {
        let body = JSONText.object(["error": JSONText.object(["code": JSONText.string(code), "message": JSONText.string(message)])])
        let reason =
            switch status {
            case 400: "Bad Request"
            case 408: "Request Timeout"
            case 429: "Too Many Requests"
            case 503: "Service Unavailable"
            default: "Request Header Fields Too Large"
            }
        let head =
            "HTTP/1.1 \(status) \(reason)\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n"
            + "X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"
        let channel = context.channel
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: head + body))).whenComplete { _ in channel.close(promise: nil) }
        // A client that does not read its answer is not waited for.
        context.eventLoop.scheduleTask(in: .seconds(1)) { channel.close(promise: nil) }
    }
}

/// Reports each request's head and end, and a parse error, as the HTTP decoder sees them, to
/// the connection's `ConnectionGuard` (placed right after the decoder).
final package class RequestPhases: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = HTTPServerRequestPart
    package typealias InboundOut = HTTPServerRequestPart

    private let guard_: ConnectionGuard

    package init(_ guard_: ConnectionGuard) {
        self.guard_ = guard_
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: guard_.decodedHead()
        case .end: guard_.decodedEnd()
        case .body: break
        }
        context.fireChannelRead(data)
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError { guard_.parseError() }
        context.fireErrorCaught(error)
    }

    /// Puts a guard first in `channel`'s pipeline and its reporter after the HTTP decoder
    /// (which must be there already).
    static package func install(_ guard_: ConnectionGuard, on channel: any Channel) throws {
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(guard_, position: .first)
        let decoder = try pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self)
        try pipeline.addHandler(RequestPhases(guard_), position: .after(decoder))
    }
}

/// A server child channel with a `ConnectionGuard` in its pipeline (the web-only and admin
/// nodes' plain HTTP/1.1; a socket node's `BrowserChannel` adds its own).
package struct GuardedChannel<Base: ServerChildChannel>: ServerChildChannel {
    package typealias Value = Base.Value
    package let base: Base
    package let limits: ConnectionGuard.Limits
    package let budgets: ConnectionBudgets

    package init(base: Base, limits: ConnectionGuard.Limits, budgets: ConnectionBudgets) {
        self.base = base
        self.limits = limits
        self.budgets = budgets
    }

    package func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let (limits, budgets) = (self.limits, self.budgets)
        return base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            try RequestPhases.install(ConnectionGuard(limits: limits, budgets: budgets), on: channel)
            return value
        }
    }

    package func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}
