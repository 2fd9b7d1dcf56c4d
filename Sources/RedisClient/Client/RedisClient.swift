import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

/// A Redis client for ExamBell's engines.
///
/// Ordinary commands share one multiplexed connection (replies are matched in order, so
/// concurrent callers pipeline naturally). Blocking reads get their own connection from
/// `dedicatedConnection()`. A lost connection is re-made on the next command, with a
/// backoff during which calls fail fast with `unavailable`, so that callers never hang
/// while Redis is down and ExamBell never needs a restart after Redis comes back.
///
/// As a `Service`, `run()` owns the connections: when the service group stops it (graceful
/// shutdown or cancellation), every connection it made, shared and dedicated, is closed, and
/// later calls fail at once. Used without a service group, `shutdown()` does the same.
public final class RedisClient: Service, Sendable {
    public let configuration: RedisConfiguration
    private let shared: ConnectionSlot
    /// Every dedicated connection handed out and not closed yet.
    private let dedicated = Mutex<[ObjectIdentifier: ConnectionSlot]>([:])

    /// Which server the connections reach, and how often that changed (failovers).
    private let primary: PrimaryTracker

    public init(configuration: RedisConfiguration, logger: Logger = Logger(label: "exambell.redis")) {
        self.configuration = configuration
        self.primary = PrimaryTracker()
        self.shared = ConnectionSlot(configuration: configuration, logger: logger, primary: primary)
    }

    /// How many times a connection reached another server than the one before (a failover
    /// followed through the sentinels); 0 while the primary stays the same.
    public var failovers: Int { primary.changes }

    /// Runs until the service group stops it, then closes every connection.
    public func run() async throws {
        try? await gracefulShutdown()
        shutdown()
    }

    /// Sends one command; an error reply is thrown as `RedisError`.
    @discardableResult
    public func send(_ command: RESPCommand) async throws -> RESPValue {
        let connection = try await shared.connection()
        return try ConnectionSlot.checked(try await connection.send(command, timeout: configuration.commandTimeout), on: connection)
            .throwingError()
    }

    /// Sends commands in one round trip; returns every reply (error replies included).
    public func pipeline(_ commands: [RESPCommand]) async throws -> [RESPValue] {
        let connection = try await shared.connection()
        let replies = try await connection.pipeline(commands, timeout: configuration.commandTimeout)
        for reply in replies { _ = try ConnectionSlot.checked(reply, on: connection) }
        return replies
    }

    /// A connection of its own, for commands that block (`XREADGROUP … BLOCK`).
    public func dedicatedConnection() -> DedicatedRedisConnection {
        let slot = ConnectionSlot(configuration: configuration, logger: shared.logger, primary: primary)
        dedicated.withLock { $0[ObjectIdentifier(slot)] = slot }
        return DedicatedRedisConnection(slot: slot) { [weak self] in
            _ = self?.dedicated.withLock { $0.removeValue(forKey: ObjectIdentifier(slot)) }
        }
    }

    /// Closes every connection (shared and dedicated); later calls fail at once.
    public func shutdown() {
        shared.close()
        let slots = dedicated.withLock { slots in
            defer { slots = [:] }
            return Array(slots.values)
        }
        for slot in slots { slot.close() }
    }
}

/// A connection of one caller's own, re-made after failures like the shared one.
public final class DedicatedRedisConnection: Sendable {
    let slot: ConnectionSlot
    private let onClose: @Sendable () -> Void

    init(slot: ConnectionSlot, onClose: @escaping @Sendable () -> Void) {
        self.slot = slot
        self.onClose = onClose
    }

    /// Sends a command that may block up to `blockFor`; the timeout allows for that.
    public func send(_ command: RESPCommand, blockFor: Duration) async throws -> RESPValue {
        let connection = try await slot.connection()
        return try ConnectionSlot.checked(
            try await connection.send(command, timeout: blockFor + slot.configuration.commandTimeout), on: connection
        ).throwingError()
    }

    public func close() {
        slot.close()
        onClose()
    }
}

/// Holds one connection and re-makes it on demand, backing off after failures.
final class ConnectionSlot: Sendable {
    private struct State {
        var connection: RedisConnection?
        var connecting: Task<RedisConnection, any Error>?
        var retryAt: ContinuousClock.Instant?
        var backoff: Duration = ConnectionSlot.initialBackoff
        var closed = false
    }

    static let initialBackoff: Duration = .milliseconds(100)
    static let maxBackoff: Duration = .seconds(2)

    let configuration: RedisConfiguration
    let logger: Logger
    let primary: PrimaryTracker
    private let state = Mutex(State())

    init(configuration: RedisConfiguration, logger: Logger, primary: PrimaryTracker) {
        self.configuration = configuration
        self.logger = logger
        self.primary = primary
    }

    func connection() async throws -> RedisConnection {
        enum Next {
            case use(RedisConnection)
            case wait(Task<RedisConnection, any Error>)
            case failFast
        }
        let configuration = self.configuration
        let next: Next = state.withLock { state in
            if let connection = state.connection, connection.isActive { return .use(connection) }
            state.connection = nil
            if let task = state.connecting { return .wait(task) }
            if state.closed { return .failFast }
            if let retryAt = state.retryAt, ContinuousClock.now < retryAt { return .failFast }
            let task = Task { try await RedisConnection.connect(configuration) }
            state.connecting = task
            return .wait(task)
        }
        switch next {
        case .use(let connection):
            return connection
        case .failFast:
            throw RedisClientError.unavailable("Redis at \(configuration.description) is unreachable; retrying shortly.")
        case .wait(let task):
            do {
                let connection = try await task.value
                let reconnected = state.withLock { state in
                    let wasDown = state.retryAt != nil
                    state.connection = connection
                    state.connecting = nil
                    state.retryAt = nil
                    state.backoff = Self.initialBackoff
                    return wasDown
                }
                if reconnected { logger.info("reconnected to Redis", metadata: ["redis": "\(configuration.description)"]) }
                if primary.reached(connection.endpoint) {
                    logger.warning("Redis primary changed (failover)", metadata: ["primary": "\(connection.endpoint)"])
                }
                return connection
            } catch {
                let first = state.withLock { state in
                    let first = state.retryAt == nil
                    state.connecting = nil
                    state.retryAt = ContinuousClock.now + state.backoff
                    state.backoff = min(state.backoff * 2, Self.maxBackoff)
                    return first
                }
                if first {
                    logger.warning("cannot reach Redis", metadata: ["redis": "\(configuration.description)", "error": "\(error)"])
                }
                throw RedisClientError.unavailable("Redis at \(configuration.description) is unreachable (\(error)).")
            }
        }
    }

    /// `reply`, unless it says the server is no primary any more (`READONLY`: a failover
    /// demoted it): then the connection is closed, so that the next command finds the
    /// primary again (through the sentinels), and the call fails as `unavailable`.
    static func checked(_ reply: RESPValue, on connection: RedisConnection) throws -> RESPValue {
        if case .error(let message) = reply, message.hasPrefix("READONLY") {
            connection.close()
            throw RedisClientError.unavailable("Redis answered READONLY: the primary changed; finding it again.")
        }
        return reply
    }

    func close() {
        let connection = state.withLock { state in
            state.closed = true
            defer { state.connection = nil }
            return state.connection
        }
        connection?.close()
    }
}

/// The server a client's connections last reached, and how many times it changed.
final class PrimaryTracker: Sendable {
    private let state = Mutex<(endpoint: RedisConfiguration.Endpoint?, changes: Int)>((nil, 0))

    /// Notes a connection to `endpoint`; true when it is another server than before.
    func reached(_ endpoint: RedisConfiguration.Endpoint) -> Bool {
        state.withLock { state in
            defer { state.endpoint = endpoint }
            guard let last = state.endpoint, last != endpoint else { return false }
            state.changes += 1
            return true
        }
    }

    var changes: Int { state.withLock { $0.changes } }
}
