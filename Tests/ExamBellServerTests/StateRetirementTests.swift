import ExamBellCore
import ExamBellFlow
import ExamBellProof
import ExamBellServer
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// State that outlives its use (`StateRetirement`), on both state-store engines: once an
/// exam's sessions closed, final sync confirms it and its keys go; the DB keeps what only the
/// state store held, and every view of the exam reads the same as before.
@Suite("State of ended exams retired", .timeLimit(.minutes(5)))
struct StateRetirementTests {
    @Test(
        "sessions closed: the candidates' keys and hashes go, the plan key stays, the DB keeps the rest; roster and report unchanged",
        arguments: FinalSyncTests.Engine.allCases
    )
    func retiresClosedExams(_ engine: FinalSyncTests.Engine) async throws {
        try await FinalSyncTests().withNode(engine) { test in
            try await test.node.application.test(.router) { client in
                _ = try await client.makeExam("old", candidates: 3)
                _ = try await client.makeExam("recent", candidates: 2)
                _ = try await client.makeExam("running", candidates: 2)
                _ = try await client.end("recent")
                let store = test.backends.store
                let state = test.backends.state
                // Ended two hours ago (the sessions close an hour after the end), straight
                // through the store; the outbox relay delivers it (keys, rows).
                let ended = Timestamp.now().adding(seconds: -7200)
                _ = try await store.endExam(examId: "old", at: ended, actor: "admin", reason: nil, leaseUntil: ended)
                try await eventually("the relay wrote old's keys and rows") {
                    let key = try await state.candidates(["old-c3"])["old-c3"]?.status
                    let row = try await store.candidates(ids: ["old-c3"]).first?.status
                    return key == .completed && row == .completed
                }
                try await state.recordAck(examId: "old", candidateId: "old-c1", at: ended.adding(seconds: 1))
                try await state.recordLock(examId: "old", candidateId: "old-c1", at: ended.adding(seconds: 1))
                try await state.recordTimeAck(examId: "old", candidateId: "old-c2", end: ended)
                try await state.recordAnnouncementSeen(examId: "old", announcementId: "a1", candidateId: "old-c3", at: ended)
                let span = ConnectionSpan(candidateId: "old-c1", instance: "n~1", start: 1_000, end: 2_000)
                try await state.recordConnections(examId: "old", [ExamConnections.field(span, serial: "1")])
                let sync = test.node.finalSync
                _ = await sync.reconcile(examId: "old")  // the ack and the lock reach the DB
                let rosterBefore = try await Self.json(client, "/api/exams/old/roster")
                let reportBefore = try decode(ExamReport.self, try await client.call(.get, "/api/exams/old/report")).candidates

                #expect(await sync.retireClosed() == ["old"], "only the exam whose sessions closed")
                let oldKeys = ["old-c1", "old-c2", "old-c3"]
                #expect(try await state.rawCandidates(oldKeys).isEmpty, "its candidates' keys went")
                let hashes = ArchivedStateStore.retiredHashes(examId: "old")
                #expect(try await state.fieldCounts(hashes) == Array(repeating: 0, count: hashes.count), "every hash of it went")
                #expect(try await state.plan("old")?.status == .completed, "its plan key stays (socket nodes refuse old sessions by it)")
                #expect(try await state.rawCandidates(["recent-c1", "running-c1"]).count == 2, "the others' keys stay")
                #expect(try await store.candidates(ids: ["old-c1"]).first?.acknowledgedAt != nil, "the DB holds the ack")

                #expect(try await Self.json(client, "/api/exams/old/roster") == rosterBefore, "the roster reads the same")
                let reportAfter = try decode(ExamReport.self, try await client.call(.get, "/api/exams/old/report")).candidates
                #expect(reportAfter == reportBefore, "the report reads the same")
                let reader = ArchivedStateStore(state: state, archive: store)
                #expect(try await reader.connections(examId: "old") == [span], "the spans are read from the DB")
                #expect(try await reader.timeAcks(examId: "old") == ["old-c2": ended])
                #expect(try await reader.announcementsSeen(examId: "old") == ["a1": ["old-c3"]])

                #expect(await sync.retireClosed().isEmpty, "retired once")
                #expect(await sync.reconcile(examId: "old").keysRewritten == 0, "a later sync writes no key of a closed exam")
                #expect(try await state.rawCandidates(oldKeys).isEmpty)
            }
        }
    }

    @Test("a sync that still copies something leaves the retirement to a later pass")
    func retiresOnlyWhenSettled() async throws {
        try await FinalSyncTests().withNode(.memory) { test in
            try await test.node.application.test(.router) { client in
                _ = try await client.makeExam("old", candidates: 2)
                let ended = Timestamp.now().adding(seconds: -7200)
                _ = try await test.backends.store.endExam(examId: "old", at: ended, actor: "admin", reason: nil, leaseUntil: ended)
                let state = test.backends.state
                try await eventually("the relay wrote old's keys and rows") {
                    try await test.backends.store.candidates(ids: ["old-c2"]).first?.status == .completed
                }
                try await state.recordAck(examId: "old", candidateId: "old-c2", at: ended.adding(seconds: 1))
                let sync = test.node.finalSync
                #expect(await sync.retireClosed().isEmpty, "the ack was copied now: confirmed on the next pass")
                #expect(try await state.fieldCounts([ArchivedStateStore.retiredHashes(examId: "old")[0]]) == [1])
                #expect(await sync.retireClosed() == ["old"])
                #expect(try await test.backends.store.candidates(ids: ["old-c2"]).first?.acknowledgedAt != nil)
            }
        }
    }

    static func json(_ client: some TestClientProtocol, _ uri: String) async throws -> NSDictionary {
        let response = try await client.call(.get, uri)
        #expect(response.status == .ok)
        return try #require(JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8)) as? NSDictionary)
    }
}
