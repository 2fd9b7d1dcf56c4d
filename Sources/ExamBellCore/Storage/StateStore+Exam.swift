/// The exam meaning of the state store's keys, written once for every engine.
///
/// Keys of DESIGN.md (fixed): `exam_plan:{plan_id}`, `exam_candidate:{candidate_id}:status`.
/// Keys ExamBell adds for live counts: `exam_ack:{plan_id}` (hash: candidate id → when its
/// browser acknowledged the end), `exam_presence:{plan_id}` (hash: socket node id →
/// `PresenceHeader`) with `exam_presence:{plan_id}:{node_id}` (hash: the node's members, subject
/// → role), and the exam day's receipts: `exam_locked:{plan_id}` (candidate id → when its
/// page reported the lock), `exam_time_ack:{plan_id}` (candidate id → the planned end its
/// page acknowledged) and `exam_announcement_ack:{plan_id}` (`{announcementId}:{candidate id}`
/// → when it was seen); and for the exam report, `exam_connections:{plan_id}` (`ExamConnections`).
extension StateStore {
    /// Writes the plan key and every candidate key in one round trip.
    public func write(plan examId: String, _ plan: PlanStateValue, candidates: [String: CandidateStateValue])
        async throws
    {
        var values: [(key: String, value: String)] = [(PlanStateValue.key(examId), plan.json)]
        values.reserveCapacity(candidates.count + 1)
        for (id, value) in candidates {
            values.append((CandidateStateValue.key(id), value.json))
        }
        try await set(values)
    }

    /// The plan key of an end: completed at `time` (what a browser joining late reads).
    public func writeEnded(examId: String, at time: Timestamp) async throws {
        try await set([(PlanStateValue.key(examId), PlanStateValue(status: .completed, endDatetime: time).json)])
    }

    /// The candidate keys of an end: every one completed at `time`, in one round trip. Every
    /// key gets the same value, encoded once.
    public func writeEnded(candidateIds: [String], at time: Timestamp) async throws {
        let candidate = CandidateStateValue(status: .completed, lastActiveTime: time).json
        try await set(candidateIds.map { (CandidateStateValue.key($0), candidate) })
    }

    /// Writes the DB's view of a plan and its candidates (the truth) in one round trip.
    public func mirror(_ plan: ExamPlan, candidates: [Candidate]) async throws {
        try await write(
            plan: plan.examId, PlanStateValue(plan),
            candidates: Dictionary(uniqueKeysWithValues: candidates.map { ($0.candidateId, CandidateStateValue($0)) })
        )
    }

    /// The plan key's value; nil when missing or malformed.
    public func plan(_ examId: String) async throws -> PlanStateValue? {
        try await get([PlanStateValue.key(examId)])[0].flatMap(PlanStateValue.init(json:))
    }

    /// The candidate keys' raw values, by candidate id (missing keys absent), in one round trip.
    public func rawCandidates(_ ids: [String]) async throws -> [String: String] {
        let values = try await get(ids.map(CandidateStateValue.key))
        var result: [String: String] = [:]
        for (id, value) in zip(ids, values) {
            if let value { result[id] = value }
        }
        return result
    }

    /// The candidate keys' values, by candidate id (missing or malformed keys absent).
    public func candidates(_ ids: [String]) async throws -> [String: CandidateStateValue] {
        try await rawCandidates(ids).compactMapValues(CandidateStateValue.init(json:))
    }

    /// Records that a candidate's browser acknowledged the end at `time`, in the hash
    /// `exam_ack:{plan_id}` (candidate id → ack time). The candidate's own key is left alone:
    /// its `last_active_time` is the end time, one value everywhere (DESIGN).
    public func recordAck(examId: String, candidateId: String, at time: Timestamp) async throws {
        try await setField(Self.ackKey(examId), field: candidateId, value: time.iso8601)
    }

    /// The candidates of a plan that acknowledged its end.
    public func acknowledged(examId: String) async throws -> Set<String> {
        Set(try await fields(Self.ackKey(examId)).keys)
    }

    /// When each candidate of a plan acknowledged its end.
    public func acknowledgements(examId: String) async throws -> [String: Timestamp] {
        try await fields(Self.ackKey(examId)).compactMapValues(Timestamp.init(iso8601:))
    }

    /// Records that a candidate's page reported every control disabled at `time`.
    public func recordLock(examId: String, candidateId: String, at time: Timestamp) async throws {
        try await setField("exam_locked:\(examId)", field: candidateId, value: time.iso8601)
    }

    /// Records how far a candidate's device clock was from the server's (the SDK's estimate,
    /// sent with its lock).
    public func recordClockOffset(examId: String, candidateId: String, ms: Int) async throws {
        try await setField("exam_clock:\(examId)", field: candidateId, value: String(ms))
    }

    /// Each candidate's device clock offset (ms) of a plan, as its page last reported it.
    public func clockOffsets(examId: String) async throws -> [String: Int] {
        try await fields("exam_clock:\(examId)").compactMapValues { Int($0) }
    }

    /// When each candidate's page of a plan reported its lock.
    public func locks(examId: String) async throws -> [String: Timestamp] {
        try await fields("exam_locked:\(examId)").compactMapValues(Timestamp.init(iso8601:))
    }

    /// Records that a candidate's page acknowledged the planned end `end`.
    public func recordTimeAck(examId: String, candidateId: String, end: Timestamp) async throws {
        try await setField("exam_time_ack:\(examId)", field: candidateId, value: end.iso8601)
    }

    /// The planned end each candidate's page of a plan last acknowledged.
    public func timeAcks(examId: String) async throws -> [String: Timestamp] {
        try await fields("exam_time_ack:\(examId)").compactMapValues(Timestamp.init(iso8601:))
    }

    /// Records that a candidate saw (dismissed) an announcement.
    public func recordAnnouncementSeen(examId: String, announcementId: String, candidateId: String, at time: Timestamp)
        async throws
    {
        try await setField("exam_announcement_ack:\(examId)", field: "\(announcementId):\(candidateId)", value: time.iso8601)
    }

    /// Who saw each announcement of a plan: announcement id → candidate ids.
    public func announcementsSeen(examId: String) async throws -> [String: Set<String>] {
        var seen: [String: Set<String>] = [:]
        for field in try await fields("exam_announcement_ack:\(examId)").keys {
            guard let colon = field.firstIndex(of: ":") else { continue }
            seen[String(field[..<colon]), default: []].insert(String(field[field.index(after: colon)...]))
        }
        return seen
    }

    /// Publishes one socket node's tick of an exam's presence: its members that changed (or
    /// all of them, `update.full`) into `exam_presence:{plan_id}:{node_id}` (subject → role),
    /// then its counts and heartbeat into `exam_presence:{plan_id}`. A node left with no
    /// browser of the exam removes both.
    public func publishPresence(examId: String, nodeId: String, _ update: PresenceUpdate) async throws {
        let members = Self.presenceMembersKey(examId, nodeId: nodeId)
        if update.candidates == 0 && update.proctors == 0 {
            try await delete([members])
            try await deleteField(Self.presenceKey(examId), field: nodeId)
            return
        }
        if update.full { try await delete([members]) }
        try await setFields(members, update.present.map { ($0.key, $0.value.rawValue) })
        try await deleteFields(members, update.absent)
        try await setField(Self.presenceKey(examId), field: nodeId, value: update.header.json)
    }

    /// Who is connected to a plan over all socket nodes, ignoring nodes silent since `freshAfter`:
    /// the fresh nodes' members (one read per node).
    public func presence(examId: String, freshAfter: Timestamp) async throws -> Presence {
        var merged = Presence(candidates: [], proctors: [], updated: freshAfter)
        for (nodeId, value) in try await fields(Self.presenceKey(examId)) {
            guard let header = PresenceHeader(json: value), header.updated >= freshAfter else { continue }
            for (subject, role) in try await fields(Self.presenceMembersKey(examId, nodeId: nodeId)) {
                if role == SessionRole.proctor.rawValue { merged.proctors.insert(subject) } else { merged.candidates.insert(subject) }
            }
        }
        return merged
    }

    /// Every presence key of a plan: the heartbeats and each node's members.
    public func presenceKeys(examId: String) async throws -> [String] {
        [Self.presenceKey(examId)] + (try await fields(Self.presenceKey(examId))).keys.map { Self.presenceMembersKey(examId, nodeId: $0) }
    }

    /// What final sync copies from the state store of an ended exam, in brief: its plan key
    /// and how many acks, locks and clock offsets its hashes hold. Two equal fingerprints
    /// mean nothing of it for final sync changed between them (an ended exam's candidate keys
    /// are written by the end itself, which asks for its own sync).
    public func syncFingerprint(examId: String) async throws -> SyncFingerprint {
        let plan = try await get([PlanStateValue.key(examId)])[0]
        let counts = try await fieldCounts([Self.ackKey(examId), "exam_locked:\(examId)", "exam_clock:\(examId)"])
        return SyncFingerprint(plan: plan, counts: counts)
    }

    static func ackKey(_ examId: String) -> String { "exam_ack:\(examId)" }
    static func presenceKey(_ examId: String) -> String { "exam_presence:\(examId)" }
    static func presenceMembersKey(_ examId: String, nodeId: String) -> String { "exam_presence:\(examId):\(nodeId)" }
}

/// Who is connected to an exam over the socket nodes (`StateStore.presence`).
public struct Presence: Sendable, Hashable {
    public var candidates: Set<String>
    public var proctors: Set<String>
    /// The freshness it was read with.
    public var updated: Timestamp

    public init(candidates: Set<String>, proctors: Set<String>, updated: Timestamp) {
        self.candidates = candidates
        self.proctors = proctors
        self.updated = updated
    }
}

/// One socket node's heartbeat of an exam (`exam_presence:{plan_id}`, field: node id): how many
/// candidates and proctors it holds, when it last wrote, and its process.
public struct PresenceHeader: Sendable, Hashable, Codable {
    public var candidates: Int
    public var proctors: Int
    public var updated: Timestamp
    /// The node's process (`ConnectionSpan.instance`): whose open spans it keeps alive.
    public var instance: String?

    public init(candidates: Int, proctors: Int, updated: Timestamp, instance: String?) {
        self.candidates = candidates
        self.proctors = proctors
        self.updated = updated
        self.instance = instance
    }

    var json: String {
        JSONText.object([
            "candidates": String(candidates), "instance": instance.map(JSONText.string) ?? "null", "proctors": String(proctors),
            "updated": JSONText.string(updated.iso8601),
        ])
    }

    init?(json: String) {
        guard let header = try? JSONText.decode(Self.self, from: json) else { return nil }
        self = header
    }
}

/// What a socket node publishes of one exam on a presence tick: its heartbeat, and the members
/// that arrived (`present`) or left (`absent`) since its last tick, not every member each time;
/// all of them when `full` (its first tick, after a failed one, and now and then).
public struct PresenceUpdate: Sendable {
    public var header: PresenceHeader
    public var present: [String: SessionRole]
    public var absent: [String]
    public var full: Bool

    public init(header: PresenceHeader, present: [String: SessionRole] = [:], absent: [String] = [], full: Bool = false) {
        self.header = header
        self.present = present
        self.absent = absent
        self.full = full
    }

    public var candidates: Int { header.candidates }
    public var proctors: Int { header.proctors }
}

/// The candidates' connection spans (`Connectivity`): `exam_connections:{plan_id}`, a hash of
/// `{candidateId}|{instance}|{serial}` → `{startMs},{endMs}` (the end empty while open). A
/// socket node writes the spans that changed with its presence, many in one command.
public enum ExamConnections {
    static func key(_ examId: String) -> String { "exam_connections:\(examId)" }

    /// The hash field and value of one span (`serial` tells one node's spans of a candidate apart).
    public static func field(_ span: ConnectionSpan, serial: String) -> (field: String, value: String) {
        ("\(span.candidateId)|\(span.instance)|\(serial)", "\(span.start),\(span.end.map(String.init) ?? "")")
    }
}

extension StateStore {
    /// Writes spans given as `ExamConnections.field`s.
    public func recordConnections(examId: String, _ fields: [(field: String, value: String)]) async throws {
        try await setFields(ExamConnections.key(examId), fields)
    }

    /// Every recorded span of the exam (malformed fields skipped).
    public func connections(examId: String) async throws -> [ConnectionSpan] {
        try await fields(ExamConnections.key(examId)).compactMap { field, value in
            guard let first = field.firstIndex(of: "|"), let last = field.lastIndex(of: "|"), first < last,
                let comma = value.firstIndex(of: ","), let start = Int64(value[..<comma])
            else { return nil }
            let endText = value[value.index(after: comma)...]
            return ConnectionSpan(
                candidateId: String(field[..<first]), instance: String(field[field.index(after: first)..<last]), start: start,
                end: endText.isEmpty ? nil : Int64(endText)
            )
        }
    }

    /// Each socket node process's last heartbeat for the exam (ms), `now` for those fresh since
    /// `freshAfter`: how long its open spans lasted (`Connectivity.measure`).
    public func instancesLastSeen(examId: String, freshAfter: Timestamp, now: Int64) async throws -> [String: Int64] {
        var seen: [String: Int64] = [:]
        for value in try await fields(Self.presenceKey(examId)).values {
            guard let header = PresenceHeader(json: value), let instance = header.instance else { continue }
            seen[instance] = header.updated >= freshAfter ? now : header.updated.secondsSince1970 * 1000
        }
        return seen
    }
}

/// See `StateStore.syncFingerprint(examId:)`.
public struct SyncFingerprint: Sendable, Hashable {
    public let plan: String?
    public let counts: [Int]

    public init(plan: String?, counts: [Int]) {
        self.plan = plan
        self.counts = counts
    }

    /// Whether the plan key says the exam ended.
    public var saysEnded: Bool { plan.flatMap(PlanStateValue.init(json:))?.status == .completed }
}
