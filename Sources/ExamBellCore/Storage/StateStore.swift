/// The state store (Redis): a shared cache of exam and candidate state that every web and
/// socket node reads without touching the DB.
///
/// The protocol is the small part of Redis's data model ExamBell needs (strings, sets,
/// hashes), so an engine is only storage; the exam meaning lives once in the extensions of
/// `StateStore+Exam.swift`. Engines: `MemoryStateStore` (embedded), `RedisStateStore`.
public protocol StateStore: Sendable {
    /// Sets every key to its value in one round trip (`MSET`).
    func set(_ values: [(key: String, value: String)]) async throws

    /// The values of `keys`, nil where a key is missing, in one round trip (`MGET`).
    func get(_ keys: [String]) async throws -> [String?]

    /// Deletes keys (`DEL`).
    func delete(_ keys: [String]) async throws

    /// Adds members to the set at `key` (`SADD`); returns how many were new.
    @discardableResult
    func addToSet(_ key: String, _ members: [String]) async throws -> Int

    /// The members of the set at `key` (`SMEMBERS`).
    func setMembers(_ key: String) async throws -> Set<String>

    /// Sets fields of the hash at `key` in one round trip (`HSET key f1 v1 f2 v2 …`); none: nothing.
    func setFields(_ key: String, _ fields: [(field: String, value: String)]) async throws

    /// Deletes fields of the hash at `key` in one round trip (`HDEL key f1 f2 …`); none: nothing.
    func deleteFields(_ key: String, _ fields: [String]) async throws

    /// Every field of the hash at `key` (`HGETALL`).
    func fields(_ key: String) async throws -> [String: String]

    /// How many fields each hash of `keys` holds, 0 for a missing one, in one round trip
    /// (`HLEN` each, pipelined).
    func fieldCounts(_ keys: [String]) async throws -> [Int]

    /// Takes the lock `key` for `owner` unless another owner holds it; it lapses after `ttl`
    /// (`SET key owner NX PX ttl`). Returns whether `owner` now holds it.
    func lock(_ key: String, owner: String, ttl: Duration) async throws -> Bool

    /// Releases the lock `key` if `owner` still holds it.
    func unlock(_ key: String, owner: String) async throws
}

extension StateStore {
    /// Sets one field of the hash at `key` (`HSET`).
    public func setField(_ key: String, field: String, value: String) async throws {
        try await setFields(key, [(field, value)])
    }

    /// Deletes one field of the hash at `key` (`HDEL`).
    public func deleteField(_ key: String, field: String) async throws {
        try await deleteFields(key, [field])
    }
}
