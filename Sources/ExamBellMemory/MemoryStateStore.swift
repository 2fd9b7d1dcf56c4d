import ExamBellCore
import Synchronization

/// The in-process state store of the embedded default: Redis's strings, sets and hashes in
/// one process, behind a mutex. It loses everything when the process stops, as a Redis
/// without persistence would; final sync rewrites it from the DB.
public final class MemoryStateStore: StateStore {
    private struct Storage {
        var strings: [String: String] = [:]
        var sets: [String: Set<String>] = [:]
        var hashes: [String: [String: String]] = [:]
        var locks: [String: (owner: String, until: ContinuousClock.Instant)] = [:]
        /// The size at which lapsed locks are dropped (doubling: a used ticket's claim is a lock
        /// that is never released, only lapses).
        var pruneLocksAt = 1_024
    }

    private let storage = Mutex(Storage())

    public init() {}

    public func set(_ values: [(key: String, value: String)]) async throws {
        storage.withLock { storage in
            for (key, value) in values { storage.strings[key] = value }
        }
    }

    public func get(_ keys: [String]) async throws -> [String?] {
        storage.withLock { storage in keys.map { storage.strings[$0] } }
    }

    public func delete(_ keys: [String]) async throws {
        storage.withLock { storage in
            for key in keys {
                storage.strings[key] = nil
                storage.sets[key] = nil
                storage.hashes[key] = nil
            }
        }
    }

    @discardableResult
    public func addToSet(_ key: String, _ members: [String]) async throws -> Int {
        storage.withLock { storage in
            var added = 0
            for member in members where storage.sets[key, default: []].insert(member).inserted {
                added += 1
            }
            return added
        }
    }

    public func setMembers(_ key: String) async throws -> Set<String> {
        storage.withLock { $0.sets[key] ?? [] }
    }

    public func setFields(_ key: String, _ fields: [(field: String, value: String)]) async throws {
        guard !fields.isEmpty else { return }
        storage.withLock { storage in
            for (field, value) in fields { storage.hashes[key, default: [:]][field] = value }
        }
    }

    public func deleteFields(_ key: String, _ fields: [String]) async throws {
        storage.withLock { storage in
            for field in fields { storage.hashes[key]?[field] = nil }
            if storage.hashes[key]?.isEmpty == true { storage.hashes[key] = nil }
        }
    }

    public func fields(_ key: String) async throws -> [String: String] {
        storage.withLock { $0.hashes[key] ?? [:] }
    }

    public func fieldCounts(_ keys: [String]) async throws -> [Int] {
        storage.withLock { storage in keys.map { storage.hashes[$0]?.count ?? 0 } }
    }

    public func lock(_ key: String, owner: String, ttl: Duration) async throws -> Bool {
        storage.withLock { storage in
            let now = ContinuousClock.now
            if let held = storage.locks[key], held.until > now, held.owner != owner { return false }
            storage.locks[key] = (owner, now + ttl)
            if storage.locks.count >= storage.pruneLocksAt {
                storage.locks = storage.locks.filter { $0.value.until > now }
                storage.pruneLocksAt = max(1_024, 2 * storage.locks.count)
            }
            return true
        }
    }

    /// How many locks the table holds, lapsed ones included (for tests of the pruning).
    package var lockTableSize: Int { storage.withLock { $0.locks.count } }

    public func unlock(_ key: String, owner: String) async throws {
        storage.withLock { storage in
            if storage.locks[key]?.owner == owner { storage.locks[key] = nil }
        }
    }
}
