import ExamBellCore
import RedisClient

/// The state store on a Redis server: the keys and JSON of DESIGN.md as plain strings, the
/// ack sets and presence hashes as Redis sets and hashes. Many keys move in one command
/// (`MSET`, `MGET`), so an end writes N candidate keys in one round trip.
public struct RedisStateStore: StateStore {
    let client: CountedRedis

    /// `failures` counts this store's failed calls for the node's `/metrics`.
    public init(client: RedisClient, failures: BackendFailures = BackendFailures()) {
        self.client = CountedRedis(client: client, failures: failures)
    }

    public func set(_ values: [(key: String, value: String)]) async throws {
        guard !values.isEmpty else { return }
        try await client.execute(MSET(values))
    }

    public func get(_ keys: [String]) async throws -> [String?] {
        guard !keys.isEmpty else { return [] }
        return try await client.execute(MGET(keys))
    }

    public func delete(_ keys: [String]) async throws {
        guard !keys.isEmpty else { return }
        try await client.execute(DEL(keys))
    }

    @discardableResult
    public func addToSet(_ key: String, _ members: [String]) async throws -> Int {
        guard !members.isEmpty else { return 0 }
        return try await client.execute(SADD(key, members))
    }

    public func setMembers(_ key: String) async throws -> Set<String> {
        try await client.execute(SMEMBERS(key))
    }

    public func setFields(_ key: String, _ fields: [(field: String, value: String)]) async throws {
        guard !fields.isEmpty else { return }
        try await client.execute(HSET(key, fields: fields))
    }

    public func deleteFields(_ key: String, _ fields: [String]) async throws {
        guard !fields.isEmpty else { return }
        try await client.execute(HDEL(key, fields: fields))
    }

    public func fields(_ key: String) async throws -> [String: String] {
        try await client.execute(HGETALL(key))
    }

    public func fieldCounts(_ keys: [String]) async throws -> [Int] {
        guard !keys.isEmpty else { return [] }
        return try await client.pipeline(keys.map { ["HLEN", $0] }).map { reply in
            guard let count = reply.integer else { throw RedisClientError.unexpectedShape("HLEN") }
            return Int(count)
        }
    }

    public func lock(_ key: String, owner: String, ttl: Duration) async throws -> Bool {
        if try await client.execute(SETNXPX(key, owner, expiry: ttl)) { return true }
        // Already ours (a re-entrant take): extend it.
        let milliseconds = String(max(1, ttl.milliseconds))
        return try await client.execute(EVALInteger(Self.extendScript, keys: [key], arguments: [owner, milliseconds])) == 1
    }

    public func unlock(_ key: String, owner: String) async throws {
        try await client.execute(EVALInteger(Self.unlockScript, keys: [key], arguments: [owner]))
    }

    /// Deletes the lock only if `owner` holds it, atomically.
    static let unlockScript = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"
    /// Extends the lock only if `owner` holds it, atomically.
    static let extendScript =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"
}
