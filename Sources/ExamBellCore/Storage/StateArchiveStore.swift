/// Where an exam's state goes once its sessions have closed (`StateRetirement`): the DB keeps
/// the state store's hashes it has no columns for (the pages' time acks, the announcements
/// they saw, the connection spans the report shows), and marks the exam retired; the state
/// store's keys of it are removed then. Readers of those hashes find the archive when the
/// state store no longer has them (`ArchivedStateStore`).
public protocol StateArchiveStore: Sendable {
    /// Ended exams whose end is before `endedBefore` and whose state was not retired yet,
    /// oldest end first, at most `limit`.
    func examsToRetire(endedBefore: Timestamp, limit: Int) async throws -> [String]

    /// Keeps `hashes` (state store key → its fields) of exam `examId` in the DB (fields already
    /// kept are overwritten); one transaction.
    func archiveState(examId: String, hashes: [String: [String: String]]) async throws

    /// Marks exam `examId`'s state retired at `time`: it is not returned by `examsToRetire` again.
    func markStateRetired(examId: String, at time: Timestamp) async throws

    /// The fields the DB keeps of state store hash `key` (empty when none).
    func archivedFields(_ key: String) async throws -> [String: String]
}

extension StateStore {
    /// The hashes of an exam that the DB keeps when its state is retired; they are read through
    /// `ArchivedStateStore` afterwards.
    public static func archivedHashes(examId: String) -> [String] {
        ["exam_time_ack:\(examId)", "exam_announcement_ack:\(examId)", ExamConnections.key(examId)]
    }

    /// The keys of an exam that go when its state is retired, besides its candidates' keys and
    /// its presence (`presenceKeys`): every hash (acks, locks, clocks and the archived ones).
    /// The plan key stays: a socket node refuses an old session by it (`SessionClosing`), and it
    /// is one key an exam.
    public static func retiredHashes(examId: String) -> [String] {
        [ackKey(examId), "exam_locked:\(examId)", "exam_clock:\(examId)"] + archivedHashes(examId: examId)
    }
}

/// The state store as a web node reads it: a hash the DB archived (`StateStore.archivedHashes`)
/// is read from the archive when the state store no longer has it, so the roster, the delivery
/// view and the report read the same after an exam's state was retired. Everything else is the
/// state store's own; the archive is asked only for an archived hash the state store has not.
public struct ArchivedStateStore: StateStore {
    public let state: any StateStore
    public let archive: any StateArchiveStore

    public init(state: any StateStore, archive: any StateArchiveStore) {
        self.state = state
        self.archive = archive
    }

    /// Prefixes of the hashes the archive may hold.
    static let archivedPrefixes = archivedHashes(examId: "")

    public func fields(_ key: String) async throws -> [String: String] {
        let live = try await state.fields(key)
        guard live.isEmpty, Self.archivedPrefixes.contains(where: key.hasPrefix) else { return live }
        return try await archive.archivedFields(key)
    }

    public func set(_ values: [(key: String, value: String)]) async throws { try await state.set(values) }
    public func get(_ keys: [String]) async throws -> [String?] { try await state.get(keys) }
    public func delete(_ keys: [String]) async throws { try await state.delete(keys) }
    public func addToSet(_ key: String, _ members: [String]) async throws -> Int { try await state.addToSet(key, members) }
    public func setMembers(_ key: String) async throws -> Set<String> { try await state.setMembers(key) }
    public func setFields(_ key: String, _ fields: [(field: String, value: String)]) async throws { try await state.setFields(key, fields) }
    public func deleteFields(_ key: String, _ fields: [String]) async throws { try await state.deleteFields(key, fields) }
    public func fieldCounts(_ keys: [String]) async throws -> [Int] { try await state.fieldCounts(keys) }
    public func lock(_ key: String, owner: String, ttl: Duration) async throws -> Bool { try await state.lock(key, owner: owner, ttl: ttl) }
    public func unlock(_ key: String, owner: String) async throws { try await state.unlock(key, owner: owner) }
}
