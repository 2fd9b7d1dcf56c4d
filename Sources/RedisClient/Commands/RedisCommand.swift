/// A Redis command and the shape of its reply, in the style of valkey-swift's `Commands/`:
/// callers build a value (`MSET(...)`, `XADD(...)`) and get a typed answer back from
/// `RedisClient.execute`, never string arrays or raw reply shapes.
public protocol RedisCommand: Sendable {
    associatedtype Response: Sendable

    /// The command as Redis receives it.
    var command: RESPCommand { get }

    /// The reply read as `Response`; `RedisClientError.unexpectedShape` for any other shape.
    func response(from reply: RESPValue) throws -> Response
}

extension RedisCommand where Response == Void {
    public func response(from reply: RESPValue) throws {}
}

extension RedisClient {
    /// Sends `command` and reads its reply; an error reply is thrown as `RedisError`.
    public func execute<Command: RedisCommand>(_ command: Command) async throws -> Command.Response {
        try command.response(from: try await send(command.command))
    }
}

extension DedicatedRedisConnection {
    /// Sends a command that may block up to `blockFor` (`XREADGROUP … BLOCK`) and reads its reply.
    public func execute<Command: RedisCommand>(_ command: Command, blockFor: Duration) async throws -> Command.Response {
        try command.response(from: try await send(command.command, blockFor: blockFor))
    }
}

/// Milliseconds for `PX` and `BLOCK`: at least 1 (0 would mean "no expiry" or "block forever").
func wholeMilliseconds(_ duration: Duration) -> String {
    let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    return String(max(1, milliseconds))
}
