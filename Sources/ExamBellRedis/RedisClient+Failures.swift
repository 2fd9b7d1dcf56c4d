import ExamBellCore
import RedisClient

/// Every command of the Redis engine goes through these, so that a lost connection or a
/// timeout is counted for `/metrics`; a reply Redis sends as an error (like BUSYGROUP) is
/// an answer, not a failure.
extension RedisClient {
    @discardableResult
    func call(_ command: RESPCommand) async throws -> RESPValue {
        do {
            return try await send(command)
        } catch let error as RedisError {
            throw error
        } catch {
            BackendFailures.record(.redis)
            throw error
        }
    }
}

extension DedicatedRedisConnection {
    func call(_ command: RESPCommand, blockFor timeout: Duration) async throws -> RESPValue {
        do {
            return try await send(command, blockFor: timeout)
        } catch let error as RedisError {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            BackendFailures.record(.redis)
            throw error
        }
    }
}
