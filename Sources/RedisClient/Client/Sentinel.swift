import NIOCore
import Synchronization

/// Redis Sentinel: where the primary of a monitored name is now.
enum Sentinel {
    /// Asks every sentinel at once (`SENTINEL get-master-addr-by-name`) and answers with the
    /// first address one gives; throws `unavailable` when none has by `deadline`. At once, not
    /// in turn: a sentinel that takes the connection and never answers costs nothing while
    /// another answers, and on a loaded machine each has the whole time.
    static func primary(
        _ configuration: RedisConfiguration, until deadline: ContinuousClock.Instant, eventLoopGroup: any EventLoopGroup
    ) async throws -> RedisConfiguration.Endpoint {
        guard let name = configuration.masterName else { return .init(host: configuration.host, port: configuration.port) }
        let race = FirstAnswer(name: name, asked: configuration.sentinels.count)
        return try await withCheckedThrowingContinuation { continuation in
            race.start(continuation)
            for sentinel in configuration.sentinels {
                Task {
                    do {
                        race.answer(try await ask(sentinel, name: name, configuration, until: deadline, eventLoopGroup: eventLoopGroup))
                    } catch {
                        race.fail("\(sentinel): \(error)")
                    }
                }
            }
        }
    }

    /// One sentinel's answer: where the primary of `name` is.
    private static func ask(
        _ sentinel: RedisConfiguration.Endpoint, name: String, _ configuration: RedisConfiguration, until deadline: ContinuousClock.Instant,
        eventLoopGroup: any EventLoopGroup
    ) async throws -> RedisConfiguration.Endpoint {
        // Sentinels keep no data: no AUTH or SELECT of the data's credentials.
        let connection = try await RedisConnection.connect(
            configuration, to: sentinel, authenticate: false, until: deadline, eventLoopGroup: eventLoopGroup
        )
        defer { connection.close() }
        let reply = try await connection.send(
            ["SENTINEL", "get-master-addr-by-name", name], timeout: try RedisConnection.remaining(until: deadline)
        ).throwingError()
        guard case .array(let parts?) = reply, parts.count == 2, let host = parts[0].string, let portText = parts[1].string,
            let port = Int(portText)
        else { throw RedisClientError.unavailable("does not know \(name)") }
        return .init(host: host, port: port)
    }
}

/// The first sentinel's answer, or every sentinel's failure: resumes its continuation once.
private final class FirstAnswer: Sendable {
    private struct State {
        var continuation: CheckedContinuation<RedisConfiguration.Endpoint, any Error>?
        var failures: [String] = []
        var left: Int
    }

    private let name: String
    private let state: Mutex<State>

    init(name: String, asked: Int) {
        self.name = name
        state = Mutex(State(left: asked))
    }

    func start(_ continuation: CheckedContinuation<RedisConfiguration.Endpoint, any Error>) {
        let noneAsked = state.withLock { state in
            state.continuation = continuation
            return state.left == 0
        }
        if noneAsked { fail(nil) }
    }

    func answer(_ primary: RedisConfiguration.Endpoint) {
        let continuation = state.withLock { state in
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(returning: primary)
    }

    /// One sentinel failed (nil: none was asked); the last failure resumes with them all.
    func fail(_ failure: String?) {
        let (continuation, failures) = state.withLock { state -> (CheckedContinuation<RedisConfiguration.Endpoint, any Error>?, [String]) in
            if let failure {
                state.failures.append(failure)
                state.left -= 1
            }
            guard state.left <= 0 else { return (nil, []) }
            defer { state.continuation = nil }
            return (state.continuation, state.failures)
        }
        continuation?.resume(
            throwing: RedisClientError.unavailable("No sentinel named the primary of \(name) (\(failures.joined(separator: "; ")))."))
    }
}
