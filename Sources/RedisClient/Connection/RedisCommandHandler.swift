import NIOCore

/// Commands written together, with one promise per reply.
public struct RedisRequest: Sendable {
    public var commands: [RESPCommand]
    public var promises: [EventLoopPromise<RESPValue>]

    public init(commands: [RESPCommand], promises: [EventLoopPromise<RESPValue>]) {
        precondition(commands.count == promises.count)
        self.commands = commands
        self.promises = promises
    }
}

/// Matches replies to commands in order: every request's commands are encoded into one
/// buffer and written at once, and their promises queue up; each reply completes the oldest.
/// So pipelining is free: many commands, one flush, replies matched in order.
public final class RedisCommandHandler: ChannelDuplexHandler {
    public typealias InboundIn = RESPValue
    public typealias OutboundIn = RedisRequest
    public typealias OutboundOut = ByteBuffer

    private var pending = CircularBuffer<EventLoopPromise<RESPValue>>()

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        var buffer = context.channel.allocator.buffer(capacity: 64 * request.commands.count)
        for command in request.commands {
            command.encode(into: &buffer)
        }
        for reply in request.promises {
            pending.append(reply)
        }
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        // RESP3 pushes are not replies to any command.
        if case .push = value { return }
        guard let reply = pending.popFirst() else {
            context.fireErrorCaught(RedisClientError.unexpectedReply)
            return
        }
        reply.succeed(value)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        failAll(RedisClientError.connectionClosed)
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: any Error) {
        while let reply = pending.popFirst() {
            reply.fail(error)
        }
    }
}

/// Failures of the client itself (as opposed to `RedisError` replies of the server).
public enum RedisClientError: Error, Sendable, Equatable {
    /// The connection closed before the reply came.
    case connectionClosed
    /// No reply within the command's timeout (the connection is closed, since later
    /// replies could no longer be matched).
    case timeout
    /// Redis could not be reached recently; the client fails fast until its next retry.
    case unavailable(String)
    /// A reply arrived with no command waiting for it.
    case unexpectedReply
    /// A reply of a shape the caller did not expect.
    case unexpectedShape(String)
}
