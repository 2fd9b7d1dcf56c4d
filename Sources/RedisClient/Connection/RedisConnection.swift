import Logging
import NIOCore
import NIOPosix
import Synchronization

/// One connection to a Redis server: AUTH and SELECT on connect, then commands, alone or
/// pipelined, each with a timeout.
public final class RedisConnection: Sendable {
    let channel: any Channel
    /// The server this connection reached (through sentinels: the primary they named).
    public let endpoint: RedisConfiguration.Endpoint

    init(channel: any Channel, endpoint: RedisConfiguration.Endpoint) {
        self.channel = channel
        self.endpoint = endpoint
    }

    /// Connects, authenticates and selects the database of `configuration`. Through
    /// sentinels: asks them where the primary is, connects there and checks with `ROLE`
    /// that it is the primary (a failover may be under way), as Redis' sentinel client
    /// guidelines say. Within `configuration.connectTimeout`; through sentinels, within twice
    /// that: their answer within one, the primary's connection and `ROLE` within the other.
    public static func connect(
        _ configuration: RedisConfiguration,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> RedisConnection {
        guard configuration.usesSentinel else {
            return try await connect(
                configuration, to: .init(host: configuration.host, port: configuration.port),
                until: ContinuousClock.now + configuration.connectTimeout, eventLoopGroup: eventLoopGroup
            )
        }
        let primary = try await Sentinel.primary(
            configuration, until: ContinuousClock.now + configuration.connectTimeout, eventLoopGroup: eventLoopGroup
        )
        let deadline = ContinuousClock.now + configuration.connectTimeout
        let connection = try await connect(configuration, to: primary, until: deadline, eventLoopGroup: eventLoopGroup)
        do {
            let role = try await connection.send(["ROLE"], timeout: try remaining(until: deadline)).throwingError()
            guard case .array(let parts?) = role, parts.first?.string == "master" else {
                throw RedisClientError.unavailable("\(primary) is not the primary yet (a failover is under way).")
            }
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    /// The time left before `deadline`; `timeout` when none is.
    static func remaining(until deadline: ContinuousClock.Instant) throws(RedisClientError) -> Duration {
        let left = deadline - ContinuousClock.now
        guard left > .zero else { throw .timeout }
        return left
    }

    /// Connects to `endpoint` with the credentials and database of `configuration`, by
    /// `deadline`.
    static func connect(
        _ configuration: RedisConfiguration, to endpoint: RedisConfiguration.Endpoint, authenticate: Bool = true,
        until deadline: ContinuousClock.Instant, eventLoopGroup: any EventLoopGroup
    ) async throws -> RedisConnection {
        let channel = try await ClientBootstrap(group: eventLoopGroup)
            .connectTimeout(TimeAmount(try remaining(until: deadline)))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(RESPDecoder()), RedisCommandHandler(),
                    ])
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .get()
        let connection = RedisConnection(channel: channel, endpoint: endpoint)
        do {
            var setup: [RESPCommand] = []
            if authenticate, let password = configuration.password {
                setup.append(configuration.username.map { ["AUTH", $0, password] } ?? ["AUTH", password])
            }
            if authenticate, configuration.database != 0 {
                setup.append(["SELECT", String(configuration.database)])
            }
            if !setup.isEmpty {
                for reply in try await connection.pipeline(setup, timeout: try remaining(until: deadline)) {
                    try reply.throwingError()
                }
            }
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    /// Whether the connection is still open.
    public var isActive: Bool { channel.isActive }

    /// Sends one command and waits for its reply (an error reply is returned, not thrown).
    public func send(_ command: RESPCommand, timeout: Duration) async throws -> RESPValue {
        try await pipeline([command], timeout: timeout)[0]
    }

    /// Sends commands in one write and one flush; returns their replies in order.
    public func pipeline(_ commands: [RESPCommand], timeout: Duration) async throws -> [RESPValue] {
        guard !commands.isEmpty else { return [] }
        let eventLoop = channel.eventLoop
        let promises = commands.map { _ in eventLoop.makePromise(of: RESPValue.self) }
        let timedOut = Atomic<Bool>(false)
        let channel = self.channel
        let deadline = eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            timedOut.store(true, ordering: .relaxed)
            channel.close(promise: nil)
            for promise in promises { promise.fail(RedisClientError.timeout) }
        }
        defer { deadline.cancel() }
        let written = eventLoop.makePromise(of: Void.self)
        // A write that never reaches the handler (the channel closed meanwhile) fails its
        // replies here; failing an already completed promise is a no-op.
        written.futureResult.whenFailure { error in
            for promise in promises { promise.fail(error) }
        }
        channel.writeAndFlush(RedisRequest(commands: commands, promises: promises), promise: written)
        var replies: [RESPValue] = []
        replies.reserveCapacity(commands.count)
        do {
            for promise in promises {
                replies.append(try await promise.futureResult.get())
            }
        } catch {
            throw timedOut.load(ordering: .relaxed) ? RedisClientError.timeout : error
        }
        return replies
    }

    /// Closes the connection; pending commands fail with `connectionClosed`.
    public func close() {
        channel.close(promise: nil)
    }
}
