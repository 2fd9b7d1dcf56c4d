import ExamBellCore
import RedisClient

/// The Redis engine's way to the server: every command goes through `call`, so that a lost
/// connection or a timeout is counted in the node's `BackendFailures`; a reply Redis sends as
/// an error (like BUSYGROUP) is an answer, not a failure.
struct CountedRedis: Sendable {
    let client: RedisClient
    let failures: BackendFailures

    @discardableResult
    func call(_ command: RESPCommand) async throws -> RESPValue {
        do {
            return try await client.send(command)
        } catch let error as RedisError {
            throw error
        } catch {
            failures.record(.redis)
            throw error
        }
    }

    /// A connection of its own, for commands that block (`XREADGROUP … BLOCK`).
    func dedicatedConnection() -> DedicatedRedisConnection { client.dedicatedConnection() }

    func call(_ command: RESPCommand, on connection: DedicatedRedisConnection, blockFor timeout: Duration) async throws -> RESPValue {
        do {
            return try await connection.send(command, blockFor: timeout)
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
