import Foundation

/// Redis with a failover, for tests: a primary, a replica and three sentinels (quorum 2)
/// watching them as `MASTER_NAME`, every one a real redis-server on its own loopback port.
/// `killPrimary()` crashes the primary; the sentinels promote the replica about a second
/// later (`down-after-milliseconds` 1000).
public final class SentinelTestCluster: Sendable {
    public static let masterName = "exambell-primary"
    public let primary: RedisTestServer
    public let replica: RedisTestServer
    public let sentinels: [RedisTestServer]

    /// `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/MASTER_NAME`.
    public var url: String {
        "redis+sentinel://" + sentinels.map { "127.0.0.1:\($0.port)" }.joined(separator: ",") + "/\(Self.masterName)"
    }

    /// With `replicaLink`, the replica reaches the primary on the port it returns for the
    /// primary's (a relay the test controls, to make the replica lag).
    public static func start(replicaLink: (@Sendable (Int) async throws -> Int)? = nil) async throws -> SentinelTestCluster {
        let primary = try await RedisTestServer.start()
        let link = try await replicaLink?(primary.port) ?? primary.port
        let replica = try await RedisTestServer.start(["--replicaof", "127.0.0.1", String(link)])
        var sentinels: [RedisTestServer] = []
        for _ in 0..<3 {
            sentinels.append(
                try await RedisTestServer.startSentinel { port in
                    """
                    port \(port)
                    bind 127.0.0.1
                    protected-mode no
                    daemonize no
                    logfile ""
                    loglevel warning
                    sentinel monitor \(masterName) 127.0.0.1 \(primary.port) 2
                    sentinel down-after-milliseconds \(masterName) 1000
                    sentinel failover-timeout \(masterName) 5000
                    sentinel parallel-syncs \(masterName) 1

                    """
                })
        }
        let cluster = SentinelTestCluster(primary: primary, replica: replica, sentinels: sentinels)
        // Ready when the replica has synced and a sentinel knows it.
        var info: [String] = []
        var known: [String] = []
        for _ in 0..<300 {
            info = (try? await replica.cli("INFO", "replication")) ?? []
            known = (try? await sentinels[0].cli("SENTINEL", "replicas", masterName)) ?? []
            if info.contains(where: { $0.hasPrefix("master_link_status:up") }), !known.isEmpty { return cluster }
            try await Task.sleep(for: .milliseconds(100))
        }
        cluster.stop()
        throw TestServerError("the replica or the sentinels did not come up: \(info.prefix(6)) \(known.prefix(4))")
    }

    private init(primary: RedisTestServer, replica: RedisTestServer, sentinels: [RedisTestServer]) {
        self.primary = primary
        self.replica = replica
        self.sentinels = sentinels
    }

    /// The port the sentinels name as the primary now.
    public func primaryPort() async throws -> Int? {
        let answer = try await sentinels[0].cli("SENTINEL", "get-master-addr-by-name", Self.masterName)
        return answer.count == 2 ? Int(answer[1]) : nil
    }

    /// Crashes the primary (SIGKILL).
    public func killPrimary() {
        primary.stop()
    }

    public func stop() {
        (sentinels + [replica, primary]).forEach { $0.stop() }
    }
}
