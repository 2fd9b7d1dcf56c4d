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
        var arguments = ["MSET"]
        arguments.reserveCapacity(values.count * 2 + 1)
        for (key, value) in values {
            arguments.append(key)
            arguments.append(value)
        }
        try await client.call(RESPCommand(arguments))
    }

    public func get(_ keys: [String]) async throws -> [String?] {
        guard !keys.isEmpty else { return [] }
        let reply = try await client.call(RESPCommand(["MGET"] + keys))
        guard let values = reply.elements, values.count == keys.count else {
            throw RedisClientError.unexpectedShape("MGET")
        }
        return values.map(\.string)
    }

    public func delete(_ keys: [String]) async throws {
        guard !keys.isEmpty else { return }
        try await client.call(RESPCommand(["DEL"] + keys))
    }

    @discardableResult
    public func addToSet(_ key: String, _ members: [String]) async throws -> Int {
        guard !members.isEmpty else { return 0 }
        return Int(try await client.call(RESPCommand(["SADD", key] + members)).integer ?? 0)
    }

    public func setMembers(_ key: String) async throws -> Set<String> {
        Set(try await client.call(["SMEMBERS", key]).elements?.compactMap(\.string) ?? [])
    }

    public func setField(_ key: String, field: String, value: String) async throws {
        try await client.call(["HSET", key, field, value])
    }

    public func deleteField(_ key: String, field: String) async throws {
        try await client.call(["HDEL", key, field])
    }

    public func fields(_ key: String) async throws -> [String: String] {
        let reply = try await client.call(["HGETALL", key])
        guard let pairs = reply.pairs else { throw RedisClientError.unexpectedShape("HGETALL") }
        var result: [String: String] = [:]
        for (field, value) in pairs {
            if let field = field.string, let value = value.string { result[field] = value }
        }
        return result
    }

    public func lock(_ key: String, owner: String, ttl: Duration) async throws -> Bool {
        let milliseconds = max(1, ttl.milliseconds)
        let reply = try await client.call(["SET", key, owner, "NX", "PX", String(milliseconds)])
        if reply.string == "OK" { return true }
        // Already ours (a re-entrant take): extend it.
        let extended = try await client.call(["EVAL", Self.extendScript, "1", key, owner, String(milliseconds)])
        return extended.integer == 1
    }

    public func unlock(_ key: String, owner: String) async throws {
        try await client.call(["EVAL", Self.unlockScript, "1", key, owner])
    }

    /// Deletes the lock only if `owner` holds it, atomically.
    static let unlockScript = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"
    /// Extends the lock only if `owner` holds it, atomically.
    static let extendScript =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"
}
