import ExamBellCore
import RedisClient

/// The Redis engine's way to the server: every command goes through `execute`, so that a lost
/// connection or a timeout is counted in the node's `BackendFailures`; a reply Redis sends as
/// an error (like BUSYGROUP) is an answer, not a failure.
struct CountedRedis: Sendable {
    let client: RedisClient
    let failures: BackendFailures

    @discardableResult
    func execute<Command: RedisCommand>(_ command: Command) async throws -> Command.Response {
        try await counting { try await client.execute(command) }
    }

    /// A connection of its own, for commands that block (`XREADGROUP … BLOCK`).
    func dedicatedConnection() -> DedicatedRedisConnection { client.dedicatedConnection() }

    func execute<Command: RedisCommand>(_ command: Command, on connection: DedicatedRedisConnection, blockFor timeout: Duration)
        async throws -> Command.Response
    {
        try await counting { try await connection.execute(command, blockFor: timeout) }
    }

    private func counting<R>(_ body: () async throws -> R) async throws -> R {
        do {
            return try await body()
        } catch let error as RedisError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            failures.record(.redis)
            throw error
        }
    }
}
