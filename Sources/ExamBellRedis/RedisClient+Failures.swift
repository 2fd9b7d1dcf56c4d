import ExamBellCore
import RedisClient

/// The Redis engine's way to the server: every command goes through `execute`, so that a lost
/// connection or a timeout is counted in the node's `BackendFailures` and thrown as
/// `StoreError.unavailable`; a reply Redis sends as an error (like OOM) is thrown as
/// `StoreError.unavailable` too, with code `redis_error`, but not counted as a failure.
struct CountedRedis: Sendable {
    let client: RedisClient
    let failures: BackendFailures

    @discardableResult
    func execute<Command: RedisCommand>(_ command: Command) async throws -> Command.Response {
        try await counting { try await client.execute(command) }
    }

    /// Sends `commands` in one round trip; an error reply is thrown as `execute` throws it.
    func pipeline(_ commands: [RESPCommand]) async throws -> [RESPValue] {
        try await counting { try await client.pipeline(commands).map { try $0.throwingError() } }
    }

    /// A connection of its own, for commands that block (`XREADGROUP … BLOCK`).
    func dedicatedConnection() -> DedicatedRedisConnection { client.dedicatedConnection() }

    func execute<Command: RedisCommand>(_ command: Command, on connection: DedicatedRedisConnection, blockFor timeout: Duration)
        async throws -> Command.Response
    {
        try await counting { try await connection.execute(command, blockFor: timeout) }
    }

    /// Sends `command` and gives Redis' error reply back as it is (for a caller that expects
    /// one, like BUSYGROUP); other failures as `execute` does.
    func executeKeepingErrorReply<Command: RedisCommand>(_ command: Command) async throws -> Command.Response {
        do {
            return try await client.execute(command)
        } catch let error as RedisError {
            throw error
        } catch {
            throw translated(error)
        }
    }

    private func counting<R>(_ body: () async throws -> R) async throws -> R {
        do {
            return try await body()
        } catch {
            throw translated(error)
        }
    }

    private func translated(_ error: any Error) -> any Error {
        switch error {
        case is CancellationError:
            return CancellationError()
        case let error as RedisError:
            return StoreError.unavailable(code: "redis_error", message: "Redis refused the command: \(error.message)")
        default:
            failures.record(.redis)
            let redis = client.configuration.description
            let message =
                switch error as? RedisClientError {
                case .unavailable(let message): message
                case .timeout: "Redis at \(redis) did not answer in time."
                case .connectionClosed: "The connection to Redis at \(redis) closed before its answer."
                default: "Redis at \(redis) could not answer (\(error))."
                }
            return StoreError.unavailable(message)
        }
    }
}
