import NIOCore

/// Redis Sentinel: where the primary of a monitored name is now.
enum Sentinel {
    /// Asks each sentinel in turn (`SENTINEL get-master-addr-by-name`) and answers with the
    /// first address one gives; throws `unavailable` when none answers by `deadline`. Each
    /// sentinel has an equal share of the time left, so one that hangs leaves the next its own.
    static func primary(
        _ configuration: RedisConfiguration, until deadline: ContinuousClock.Instant, eventLoopGroup: any EventLoopGroup
    ) async throws -> RedisConfiguration.Endpoint {
        guard let name = configuration.masterName else { return .init(host: configuration.host, port: configuration.port) }
        var failures: [String] = []
        for (index, sentinel) in configuration.sentinels.enumerated() {
            do {
                let share = try RedisConnection.remaining(until: deadline) / (configuration.sentinels.count - index)
                let ownDeadline = ContinuousClock.now + share
                // Sentinels keep no data: no AUTH or SELECT of the data's credentials.
                let connection = try await RedisConnection.connect(
                    configuration, to: sentinel, authenticate: false, until: ownDeadline, eventLoopGroup: eventLoopGroup
                )
                defer { connection.close() }
                let reply = try await connection.send(
                    ["SENTINEL", "get-master-addr-by-name", name], timeout: try RedisConnection.remaining(until: ownDeadline)
                ).throwingError()
                guard case .array(let parts?) = reply, parts.count == 2, let host = parts[0].string, let portText = parts[1].string,
                    let port = Int(portText)
                else {
                    failures.append("\(sentinel): does not know \(name)")
                    continue
                }
                return .init(host: host, port: port)
            } catch {
                failures.append("\(sentinel): \(error)")
            }
        }
        throw RedisClientError.unavailable("No sentinel named the primary of \(name) (\(failures.joined(separator: "; "))).")
    }
}
