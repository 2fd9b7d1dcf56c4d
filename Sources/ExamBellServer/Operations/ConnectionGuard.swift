import ExamBellCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Synchronization

/// See `ConnectionGuard`.
public struct ConnectionLimits: Sendable {
    public var headerTimeout: TimeAmount = .seconds(20)
    public var maxHeaderBytes = 16 * 1024
    public var maxPendingPerAddress = 1_000
    /// How long a request's body may take to arrive, from its head (see `BodyDeadline`).
    public var bodyTimeout: TimeAmount = .seconds(60)
    /// The load balancers in front: their connections are not capped per address, and
    /// their requests are counted by the client they forward for.
    public var trustedProxies = TrustedProxies()

    public init() {}
}

/// Keeps a node answering when clients open connections and never finish a request.
///
/// The first handler of every connection, HTTP or a WebSocket-to-be, until the connection's
/// first request head (up to its blank line) has arrived, then it takes itself out:
/// - the head must arrive within `headerTimeout` (20 s; else `408` and close): 20,000 connections
///   that each send half a head no longer hold every descriptor for ever;
/// - the head must fit in `maxHeaderBytes` (else `431` and close), answered at once;
/// - one client address may have at most `maxPendingPerAddress` (1,000) connections still waiting
///   for their first head (else `429` and close). Finished connections are not counted: an
///   exam hall behind one NAT address opens thousands of sockets, each of which finishes
///   its handshake at once. A trusted proxy's connections are let through untouched.
/// Later requests on a kept-alive connection are bounded by the HTTP idle timeout and the
/// HTTP parser's own limits.
final class ConnectionGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    typealias Limits = ConnectionLimits

    /// Connections still waiting for their first head, per client address (one per node).
    final class Pending: Sendable {
        private let counts = Mutex<[String: Int]>([:])

        /// Counts one more for `address` unless it has `limit` already.
        func enter(_ address: String, limit: Int) -> Bool {
            counts.withLock { counts in
                let open = counts[address] ?? 0
                guard open < limit else { return false }
                counts[address] = open + 1
                return true
            }
        }

        func leave(_ address: String) {
            counts.withLock { $0.countDown(address) }
        }

        var total: Int { counts.withLock { $0.values.reduce(0, +) } }
    }

    let limits: Limits
    let pending: Pending
    private var address: String?
    private var timer: Scheduled<Void>?
    private var bytes = 0
    /// The last four bytes seen, oldest in the high byte: `\r\n\r\n` is `0x0D0A0D0A`, also
    /// when it is split across reads.
    private var lastFour: UInt32 = 0
    private var finished = false

    init(limits: Limits, pending: Pending) {
        self.limits = limits
        self.pending = pending
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private func start(_ context: ChannelHandlerContext) {
        guard address == nil, !finished else { return }
        let address = context.channel.remoteAddress?.ipAddress ?? "unknown"
        // A load balancer's connections are its many clients' (and it sends whole heads).
        if limits.trustedProxies.trusts(address) {
            finished = true
            return context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        guard pending.enter(address, limit: limits.maxPendingPerAddress) else {
            finished = true
            return refuse(context, 429, "too_many_connections", "Too many unfinished connections from your address.")
        }
        self.address = address
        let channel = context.channel
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: limits.headerTimeout) {
            let (handler, context) = bound.value
            guard !handler.finished, channel.isActive else { return }
            handler.finish()
            handler.refuse(context, 408, "request_timeout", "The request's headers did not arrive in time.")
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !finished else { return context.fireChannelRead(data) }
        let buffer = unwrapInboundIn(data)
        let view = buffer.readableBytesView
        var complete = false
        for byte in view {
            lastFour = lastFour << 8 | UInt32(byte)
            if lastFour == 0x0D0A_0D0A {
                complete = true
                break
            }
        }
        bytes += view.count
        if !complete, bytes > limits.maxHeaderBytes {
            finish()
            return refuse(context, 431, "headers_too_large", "The request's headers are larger than \(limits.maxHeaderBytes) bytes.")
        }
        context.fireChannelRead(data)
        if complete {
            finish()
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        finish()
    }

    private func finish() {
        guard !finished else { return }
        finished = true
        timer?.cancel()
        timer = nil
        if let address { pending.leave(address) }
        address = nil
    }

    /// Answers with the JSON error and closes; nothing further is read.
    private func refuse(_ context: ChannelHandlerContext, _ status: Int, _ code: String, _ message: String) {
        let body = JSONText.object(["error": JSONText.object(["code": JSONText.string(code), "message": JSONText.string(message)])])
        let reason =
            switch status {
            case 408: "Request Timeout"
            case 429: "Too Many Requests"
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

/// A server child channel with a `ConnectionGuard` first in its pipeline (the web-only and
/// admin nodes' plain HTTP/1.1; a socket node's `BrowserChannel` adds its own).
struct GuardedChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value
    let base: Base
    let limits: ConnectionGuard.Limits
    let pending: ConnectionGuard.Pending

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            try channel.pipeline.syncOperations.addHandler(ConnectionGuard(limits: limits, pending: pending))
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return base.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// A request body must arrive within `timeout` of its head, or the connection is closed:
/// a body sent a byte a minute (which the idle timeout lets live) no longer holds a
/// descriptor for ever. The clock stops when the handler has read the whole body, or has
/// answered without reading it.
struct BodyDeadline<Context: RequestContext & ChannelRequestContext>: RouterMiddleware {
    let timeout: TimeAmount

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // A body comes with a length or chunked; a GET has none.
        guard request.headers[.contentLength].map({ $0 != "0" }) ?? (request.headers[.transferEncoding] != nil) else {
            return try await next(request, context)
        }
        let channel = context.channel
        let timer = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        defer { timer.cancel() }
        var request = request
        request.body = RequestBody(asyncSequence: TimedBody(base: request.body, timer: timer))
        return try await next(request, context)
    }

    /// The body, with the timer cancelled once it ends.
    struct TimedBody: AsyncSequence, Sendable {
        typealias Element = ByteBuffer
        let base: RequestBody
        let timer: Scheduled<Void>

        struct AsyncIterator: AsyncIteratorProtocol {
            var base: RequestBody.AsyncIterator
            let timer: Scheduled<Void>

            mutating func next() async throws -> ByteBuffer? {
                let chunk = try await base.next()
                if chunk == nil { timer.cancel() }
                return chunk
            }
        }

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), timer: timer) }
    }
}

/// A request context that knows its connection's channel (to close it).
protocol ChannelRequestContext {
    var channel: any Channel { get }
}

extension Dictionary where Value == Int {
    /// One less open for `key`; the key goes when none is left (a count per client, session
    /// or address that would otherwise keep every key it ever saw).
    mutating func countDown(_ key: Key) {
        if let open = self[key], open > 1 { self[key] = open - 1 } else { self[key] = nil }
    }
}
