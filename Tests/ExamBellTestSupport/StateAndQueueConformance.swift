import ExamBellCore
import Testing

/// The behaviour every `StateStore` engine must have (memory engine, Redis).
public enum StateStoreConformance {
    public struct Case: Sendable, CustomTestStringConvertible {
        public let name: String
        public let run: @Sendable (any StateStore) async throws -> Void
        public var testDescription: String { name }
    }

    static let end = Timestamp(iso8601: "2024-01-16T18:00:00Z")!

    /// A node's presence tick with `present` as its members (counts from them).
    static func update(_ present: [String: SessionRole], updated: Timestamp, instance: String? = nil, full: Bool) -> PresenceUpdate {
        PresenceUpdate(
            header: PresenceHeader(
                candidates: present.values.count { $0 == .candidate }, proctors: present.values.count { $0 == .proctor }, updated: updated,
                instance: instance),
            present: present, full: full)
    }

    public static let cases: [Case] = [
        Case(name: "strings: set many, get many, delete") { state in
            try await state.set([("k1", "v1"), ("k2", "v2")])
            #expect(try await state.get(["k1", "missing", "k2"]) == ["v1", nil, "v2"])
            try await state.delete(["k1"])
            #expect(try await state.get(["k1", "k2"]) == [nil, "v2"])
        },
        Case(name: "sets and hashes") { state in
            #expect(try await state.addToSet("s", ["a", "b"]) == 2)
            #expect(try await state.addToSet("s", ["b", "c"]) == 1)
            #expect(try await state.setMembers("s") == ["a", "b", "c"])
            #expect(try await state.setMembers("none") == [])
            try await state.setField("h", field: "n1", value: "x")
            try await state.setField("h", field: "n2", value: "y")
            try await state.deleteField("h", field: "n1")
            #expect(try await state.fields("h") == ["n2": "y"])
        },
        Case(name: "many hash fields in one call; connection spans written and read back") { state in
            try await state.setFields("m", [("a", "1"), ("b", "2")])
            try await state.setFields("m", [("b", "3")])
            try await state.setFields("m", [])
            #expect(try await state.fields("m") == ["a": "1", "b": "3"])
            #expect(try await state.fieldCounts(["m", "missing"]) == [2, 0])
            #expect(try await state.fieldCounts([]) == [])
            let open = ConnectionSpan(candidateId: "c1", instance: "s1~1700", start: 1_000, end: nil)
            var closed = open
            closed.end = 4_000
            try await state.recordConnections(examId: "e1", [ExamConnections.field(open, serial: "7")])
            #expect(try await state.connections(examId: "e1") == [open])
            try await state.recordConnections(
                examId: "e1",
                [
                    ExamConnections.field(closed, serial: "7"),
                    ExamConnections.field(ConnectionSpan(candidateId: "c2", instance: "s|2", start: 5, end: nil), serial: "x"),
                ])
            #expect(
                Set(try await state.connections(examId: "e1"))
                    == [closed, ConnectionSpan(candidateId: "c2", instance: "s|2", start: 5, end: nil)])
            try await state.publishPresence(
                examId: "e1", nodeId: "s1", update(["c1": .candidate], updated: end, instance: "s1~1700", full: true))
            #expect(
                try await state.instancesLastSeen(examId: "e1", freshAfter: end.adding(seconds: 1), now: 99)
                    == ["s1~1700": end.secondsSince1970 * 1000])
            #expect(try await state.instancesLastSeen(examId: "e1", freshAfter: end, now: 99) == ["s1~1700": 99])
        },
        Case(name: "the exam day's receipts: locks, acknowledged planned ends, announcements seen") { state in
            try await state.recordLock(examId: "e1", candidateId: "c1", at: end)
            try await state.recordTimeAck(examId: "e1", candidateId: "c1", end: end.adding(seconds: 600))
            try await state.recordAnnouncementSeen(examId: "e1", announcementId: "a1", candidateId: "c1", at: end)
            try await state.recordAnnouncementSeen(examId: "e1", announcementId: "a1", candidateId: "c2", at: end)
            try await state.recordAnnouncementSeen(examId: "e1", announcementId: "a2", candidateId: "c2", at: end)
            #expect(try await state.locks(examId: "e1") == ["c1": end])
            #expect(try await state.locks(examId: "e2").isEmpty)
            #expect(try await state.timeAcks(examId: "e1") == ["c1": end.adding(seconds: 600)])
            #expect(try await state.announcementsSeen(examId: "e1") == ["a1": ["c1", "c2"], "a2": ["c2"]])
        },
        Case(name: "an end writes the exact keys and JSON of DESIGN.md") { state in
            try await state.write(
                plan: "e123", PlanStateValue(status: .completed, endDatetime: end),
                candidates: ["c1": CandidateStateValue(status: .completed, lastActiveTime: end)]
            )
            #expect(
                try await state.get(["exam_plan:e123", "exam_candidate:c1:status"]) == [
                    #"{"status":"completed","end_datetime":"2024-01-16T18:00:00Z"}"#,
                    #"{"status":"completed","last_active_time":"2024-01-16T18:00:00Z"}"#,
                ]
            )
            #expect(try await state.plan("e123") == PlanStateValue(status: .completed, endDatetime: end))
            #expect(try await state.candidates(["c1", "c2"]).keys.sorted() == ["c1"])
        },
        Case(name: "acks and presence") { state in
            let acked = end.adding(seconds: 3)
            try await state.recordAck(examId: "e1", candidateId: "c1", at: acked)
            try await state.recordAck(examId: "e1", candidateId: "c1", at: acked)
            #expect(try await state.acknowledged(examId: "e1") == ["c1"])
            #expect(try await state.acknowledgements(examId: "e1") == ["c1": acked])
            #expect(try await state.candidates(["c1"])["c1"] == nil, "an ack leaves the candidate's key (its end time) alone")
            try await state.publishPresence(examId: "e1", nodeId: "n1", update(["c1": .candidate, "p1": .proctor], updated: end, full: true))
            try await state.publishPresence(examId: "e1", nodeId: "n2", update(["c2": .candidate], updated: end, full: true))
            try await state.publishPresence(
                examId: "e1", nodeId: "old", update(["c9": .candidate], updated: end.adding(seconds: -60), full: true))
            let fresh = end.adding(seconds: -15)
            let merged = try await state.presence(examId: "e1", freshAfter: fresh)
            #expect(merged.candidates == ["c1", "c2"], "a silent node's browsers are not counted")
            #expect(merged.proctors == ["p1"])
            // A tick writes what moved: c3 arrived and p1 left n1; c1 stays without being written.
            var moved = update(["c3": .candidate], updated: end, full: false)
            moved.absent = ["p1"]
            moved.header.candidates = 2
            moved.header.proctors = 0
            try await state.publishPresence(examId: "e1", nodeId: "n1", moved)
            #expect(
                try await state.presence(examId: "e1", freshAfter: fresh) == Presence(candidates: ["c1", "c2", "c3"], proctors: [], updated: fresh))
            // A full tick replaces the node's members.
            try await state.publishPresence(examId: "e1", nodeId: "n1", update(["c4": .candidate], updated: end, full: true))
            #expect(try await state.presence(examId: "e1", freshAfter: fresh).candidates == ["c2", "c4"])
            #expect(
                Set(try await state.presenceKeys(examId: "e1")) == [
                    "exam_presence:e1", "exam_presence:e1:n1", "exam_presence:e1:n2", "exam_presence:e1:old",
                ])
            // A node left with none of the exam's browsers removes its keys.
            try await state.publishPresence(examId: "e1", nodeId: "n1", update([:], updated: end, full: false))
            #expect(try await state.presence(examId: "e1", freshAfter: fresh).candidates == ["c2"])
            #expect(try await state.fields("exam_presence:e1:n1").isEmpty)
            #expect(Set(try await state.presenceKeys(examId: "e1")) == ["exam_presence:e1", "exam_presence:e1:n2", "exam_presence:e1:old"])
        },
        Case(name: "a lock has one owner at a time and lapses") { state in
            #expect(try await state.lock("sync:e1", owner: "node-a", ttl: .seconds(30)))
            #expect(try await !state.lock("sync:e1", owner: "node-b", ttl: .seconds(30)))
            #expect(try await state.lock("sync:e1", owner: "node-a", ttl: .seconds(30)), "its owner may take it again")
            try await state.unlock("sync:e1", owner: "node-b")
            #expect(try await !state.lock("sync:e1", owner: "node-b", ttl: .seconds(30)), "only the owner unlocks")
            try await state.unlock("sync:e1", owner: "node-a")
            #expect(try await state.lock("sync:e1", owner: "node-b", ttl: .milliseconds(100)))
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await state.lock("sync:e1", owner: "node-a", ttl: .seconds(30)), "a lapsed lock is free")
        },
    ]
}

/// The behaviour every `ExamEndQueue` engine must have (memory engine, Redis Streams).
public enum QueueConformance {
    public struct Case: Sendable, CustomTestStringConvertible {
        public let name: String
        public let run: @Sendable (any ExamEndQueue) async throws -> Void
        public var testDescription: String { name }
    }

    static func message(_ examId: String) -> ExamEndQueueMessage {
        ExamEndQueueMessage(examId: examId, timestamp: Timestamp(iso8601: "2024-01-16T18:00:00Z")!)
    }

    public static let cases: [Case] = [
        Case(name: "every group sees every entry (fan-out)") { queue in
            try await queue.createGroup("node-a")
            try await queue.createGroup("node-b")
            try await queue.publish(message("e1"))
            let a = try await queue.read(group: "node-a", limit: 10, timeout: .seconds(1))
            let b = try await queue.read(group: "node-b", limit: 10, timeout: .seconds(1))
            #expect(a.map(\.payload) == [message("e1").json])
            #expect(b.map(\.payload) == [message("e1").json])
            #expect(a.first?.message == message("e1"))
        },
        Case(name: "unacknowledged entries stay pending until acknowledged") { queue in
            try await queue.createGroup("node-a")
            try await queue.publish(message("e1"))
            try await queue.publish(message("e2"))
            let read = try await queue.read(group: "node-a", limit: 10, timeout: .seconds(1))
            #expect(read.count == 2)
            #expect(try await queue.read(group: "node-a", limit: 10, timeout: .milliseconds(50)).isEmpty, "no entry is delivered twice as new")
            #expect(try await queue.pending(group: "node-a", limit: 10).map(\.id) == read.map(\.id))
            try await queue.acknowledge(group: "node-a", ids: [read[0].id])
            #expect(try await queue.pending(group: "node-a", limit: 10).map(\.id) == [read[1].id])
        },
        Case(name: "a new group does not replay history") { queue in
            try await queue.publish(message("old"))
            try await queue.createGroup("late")
            try await queue.createGroup("late")
            #expect(try await queue.read(group: "late", limit: 10, timeout: .milliseconds(50)).isEmpty)
            try await queue.publish(message("new"))
            #expect(try await queue.read(group: "late", limit: 10, timeout: .seconds(1)).compactMap(\.message?.examId) == ["new"])
        },
        Case(name: "a blocked read wakes on publish") { queue in
            try await queue.createGroup("waiter")
            async let read = queue.read(group: "waiter", limit: 10, timeout: .seconds(10))
            try await Task.sleep(for: .milliseconds(100))
            try await queue.publish(message("wake"))
            #expect(try await read.compactMap(\.message?.examId) == ["wake"])
        },
    ]
}
