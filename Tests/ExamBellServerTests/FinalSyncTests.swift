import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellRuntime
import ExamBellServer
import ExamBellSocket
import ExamBellTestSupport
import ExamBellWeb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

/// Final sync (seed §4.3.2) on both state-store engines: the DB is the truth for what is
/// missing or drifted in Redis, and candidates' later activity flows from Redis into the DB.
@Suite("Final sync", .timeLimit(.minutes(10)))
struct FinalSyncTests {
    enum Engine: String, CaseIterable, CustomTestStringConvertible {
        case memory, redis
        var testDescription: String { rawValue }
    }

    /// A node whose only syncs are the ones the test calls (`periodic` keeps the 1 s pass on).
    func withNode(
        _ engine: Engine, periodic: Bool = false, faults: FaultPoints = .none, _ body: @escaping @Sendable (TestNode) async throws -> Void
    ) async throws {
        let interval: Duration = periodic ? .seconds(1) : .zero
        switch engine {
        case .memory:
            try await body(try await TestNode(syncAfterEnd: nil, syncInterval: interval, faults: faults))
        case .redis:
            let redis = try await RedisTestServer.start()
            defer { redis.stop() }
            try await body(try await TestNode(redisURL: redis.url, syncAfterEnd: nil, syncInterval: interval, faults: faults))
        }
    }

    @Test(
        "a candidate ended alone while a sync is between its DB read and its state-store read keeps its completed key",
        arguments: Engine.allCases
    )
    func candidateEndDuringSync(_ engine: Engine) async throws {
        let held = HeldPoint(.syncAfterRowsRead)
        try await withNode(engine, faults: FaultPoints(held.hook)) { test in
            try await test.node.application.test(.router) { client in
                _ = try await client.makeExam("e1", candidates: 2)
                held.arm()
                defer { held.release() }  // a failed step below must not leave the sync held
                let sync = Task { await test.node.finalSync.reconcile(examId: "e1") }
                try await bounded("the sync read the candidates' rows", within: .seconds(10)) { await held.reached() }
                #expect(try await client.call(.post, "/api/exams/e1/candidates/e1-c1/end", json: #"{"reason":"ill"}"#).status == .ok)
                try await eventually("e1-c1's key says completed") {
                    try await test.backends.state.candidates(["e1-c1"])["e1-c1"]?.status == .completed
                }
                held.release()
                _ = await sync.value
                #expect(
                    try await test.backends.state.candidates(["e1-c1"])["e1-c1"]?.status == .completed,
                    "the sync read c1's row again rather than put its key back to in_progress")
                #expect(try await test.backends.state.candidates(["e1-c2"])["e1-c2"]?.status == .inProgress)
            }
        }
    }

    @Test(
        "the periodic pass looks at running exams and recent ends only; an old end comes back when a sync of it found drift",
        arguments: Engine.allCases
    )
    func periodicPassIsLive(_ engine: Engine) async throws {
        try await withNode(engine) { test in
            try await test.node.application.test(.router) { client in
                _ = try await client.makeExam("old", candidates: 2)
                _ = try await client.makeExam("running", candidates: 2)
                _ = try await client.makeExam("later", candidates: 2, start: false)
                // Ended an hour ago, straight through the store (the API ends at now).
                let store = test.backends.store
                let hourAgo = Timestamp.now().adding(seconds: -3600)
                _ = try await store.endExam(examId: "old", at: hourAgo, actor: "admin", reason: nil, leaseUntil: hourAgo)
                try await store.completeCandidates(examId: "old", at: hourAgo)
                let state = test.backends.state
                try await eventually("the outbox relay wrote the old end's keys") { try await state.plan("old")?.status == .completed }
                #expect(await test.node.finalSync.reconcileAll() == ["running"])
                try await state.delete([PlanStateValue.key("old")])
                #expect(await test.node.finalSync.reconcileAll() == ["running"])
                #expect(try await state.plan("old") == nil, "an exam ended before the window is left alone by the periodic pass")
                // Asked for by name (as after an end), it is reconciled; the drift marks it dirty.
                #expect(await test.node.finalSync.reconcile(examId: "old").keysRewritten == 1)
                #expect(try await state.plan("old") == PlanStateValue(status: .completed, endDatetime: hourAgo))
                #expect(test.node.finalSync.dirtyExams == ["old"])
                #expect(await test.node.finalSync.reconcileAll() == ["running", "old"])
                #expect(test.node.finalSync.dirtyExams.isEmpty, "a pass that found nothing wrong clears the mark")
                #expect(await test.node.finalSync.reconcileAll() == ["running"])
            }
        }
    }

    @Test(
        "an ended exam the periodic pass found settled is reconciled again only when its state moves: an ack, a lost plan key",
        arguments: Engine.allCases
    )
    func settledEndsAreSkipped(_ engine: Engine) async throws {
        try await withNode(engine) { test in
            try await test.node.application.test(.router) { client in
                _ = try await client.makeExam("ended", candidates: 2)
                _ = try await client.makeExam("running", candidates: 2)
                _ = try await client.end("ended")
                let sync = test.node.finalSync
                let state = test.backends.state
                #expect(Set(await sync.reconcileAll()) == ["running", "ended"], "the first pass after the end reads it whole")
                #expect(await sync.reconcileAll() == ["running"], "found settled: only its fingerprint is read")
                #expect(await sync.reconcileAll() == ["running"])

                try await state.recordAck(examId: "ended", candidateId: "ended-c1", at: .now())
                #expect(Set(await sync.reconcileAll()) == ["running", "ended"], "an ack moved it")
                #expect(try await test.backends.store.candidates(ids: ["ended-c1"]).first?.acknowledgedAt != nil, "the ack reached the DB")
                #expect(Set(await sync.reconcileAll()) == ["running", "ended"], "a pass that copied something is checked once more")
                #expect(await sync.reconcileAll() == ["running"])

                try await state.delete([PlanStateValue.key("ended")])
                #expect(Set(await sync.reconcileAll()) == ["running", "ended"], "a lost plan key moved it")
                #expect(try await state.plan("ended")?.status == .completed, "and the pass wrote it back")
                _ = await sync.reconcileAll()
                #expect(await sync.reconcileAll() == ["running"])
            }
        }
    }

    @Test("deleted and corrupted keys are rewritten from the DB; later activity flows into the DB", arguments: Engine.allCases)
    func repair(_ engine: Engine) async throws {
        try await withNode(engine) { test in
            try await test.node.application.test(.router) { client in
                _ = try await client.makeExam("e1", candidates: 3)
                let end = try #require(Timestamp(iso8601: try await client.end("e1").endDatetime))
                let state = test.backends.state
                let later = end.adding(seconds: 42)
                try await state.delete([PlanStateValue.key("e1")])
                try await state.set([
                    (CandidateStateValue.key("e1-c1"), "{garbage"),
                    (CandidateStateValue.key("e1-c2"), CandidateStateValue(status: .inProgress, lastActiveTime: nil).json),
                    (CandidateStateValue.key("e1-c3"), CandidateStateValue(status: .completed, lastActiveTime: later).json),
                ])
                let report = await test.node.finalSync.reconcile(examId: "e1")
                #expect(report.keysRewritten == 3)
                #expect(report.candidatesUpdatedInDB == 1)
                #expect(try await state.plan("e1") == PlanStateValue(status: .completed, endDatetime: end))
                let completedAtEnd = CandidateStateValue(status: .completed, lastActiveTime: end)
                #expect(
                    try await state.get(["exam_candidate:e1-c1:status", "exam_candidate:e1-c2:status", "exam_candidate:e1-c3:status"]) == [
                        completedAtEnd.json, completedAtEnd.json, CandidateStateValue(status: .completed, lastActiveTime: later).json,
                    ])
                let c3 = try await test.backends.store.candidates(ids: ["e1-c3"]).first
                #expect(c3?.lastActiveTime == later, "later activity reached the DB")
                #expect(await test.node.finalSync.reconcile(examId: "e1") == FinalSync.Report(), "a second pass finds nothing to do")
            }
        }
    }

    @Test("keys that say an end the DB does not hold are put back, and never reach the DB", arguments: Engine.allCases)
    func unendedEnd(_ engine: Engine) async throws {
        try await withNode(engine) { test in
            try await test.node.application.test(.router) { client in
                _ = try await client.makeExam("e1", candidates: 2)
                let state = test.backends.state
                let bogus = Timestamp.now()
                try await state.set([
                    (PlanStateValue.key("e1"), PlanStateValue(status: .completed, endDatetime: bogus).json),
                    (CandidateStateValue.key("e1-c1"), CandidateStateValue(status: .completed, lastActiveTime: bogus).json),
                ])
                let report = await test.node.finalSync.reconcile(examId: "e1")
                #expect(report.candidatesUpdatedInDB == 0, "the DB did not take an end it never committed")
                #expect(try await test.backends.store.candidates(examId: "e1").allSatisfy { $0.status == .inProgress })
                #expect(try await state.plan("e1") == PlanStateValue(status: .inProgress, endDatetime: nil))
                #expect(try await state.candidates(["e1-c1"])["e1-c1"]?.status == .inProgress)
                #expect(await test.node.finalSync.reconcile(examId: "e1") == FinalSync.Report(), "a second pass finds nothing to do")
            }
        }
    }

    @Test("only one node syncs an exam at a time", arguments: Engine.allCases)
    func lock(_ engine: Engine) async throws {
        try await withNode(engine) { test in
            try await test.node.application.test(.router) { client in
                _ = try await client.makeExam("e1", candidates: 1)
                _ = try await client.end("e1")
                try await test.backends.state.delete([PlanStateValue.key("e1")])
                #expect(try await test.backends.state.lock("exam_sync_lock:e1", owner: "another-node", ttl: .seconds(30)))
                let report = await test.node.finalSync.reconcile(examId: "e1")
                #expect(report.lockedElsewhere && report.keysRewritten == 0 && report.candidatesUpdatedInDB == 0, "it looked at nothing")
                #expect(try await test.backends.state.plan("e1") == nil, "the other node's sync is not interfered with")
                #expect(test.node.finalSync.dirtyExams == ["e1"], "looked at again on the next pass, never taken as settled")
                try await test.backends.state.unlock("exam_sync_lock:e1", owner: "another-node")
                #expect(await test.node.finalSync.reconcile(examId: "e1").keysRewritten == 1)
            }
        }
    }

    @Test("the periodic sync brings a deleted key back by itself", arguments: Engine.allCases)
    func periodic(_ engine: Engine) async throws {
        try await withNode(engine, periodic: true) { test in
            try await test.node.application.test(.live) { client in
                _ = try await client.makeExam("e1", candidates: 2)
                let end = try await client.end("e1")
                try await test.backends.state.delete([PlanStateValue.key("e1"), CandidateStateValue.key("e1-c2")])
                try await eventually("keys rewritten by the periodic pass") {
                    try await test.backends.state.get([PlanStateValue.key("e1"), CandidateStateValue.key("e1-c2")]) == [
                        #"{"status":"completed","end_datetime":"\#(end.endDatetime)"}"#,
                        #"{"status":"completed","last_active_time":"\#(end.endDatetime)"}"#,
                    ]
                }
            }
        }
    }
}

/// Holds the first pass through a fault point after `arm()` until `release()`.
final class HeldPoint: Sendable {
    let point: FaultPoints.Point
    /// (armed, arrived): only the first pass after `arm()` is held.
    private let state = Mutex((armed: false, arrived: false))
    private let arrival = Latch()
    private let releasing = Latch()

    init(_ point: FaultPoints.Point) { self.point = point }

    func arm() { state.withLock { $0.armed = true } }

    /// The node's hook: holds the armed pass until released.
    @Sendable func hook(_ reached: FaultPoints.Point) async {
        guard reached == point else { return }
        let hold = state.withLock { state in
            guard state.armed, !state.arrived else { return false }
            state.arrived = true
            return true
        }
        guard hold else { return }
        arrival.open()
        await releasing.wait()
    }

    /// Returns once the armed pass has arrived.
    func reached() async { await arrival.wait() }

    func release() { releasing.open() }
}

/// A one-shot signal: `wait()` returns once `open()` has been called, at once if it already was.
final class Latch: Sendable {
    private let state = Mutex((isOpen: false, waiting: [CheckedContinuation<Void, Never>]()))

    func open() {
        let waiting = state.withLock { state in
            state.isOpen = true
            defer { state.waiting = [] }
            return state.waiting
        }
        for continuation in waiting { continuation.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state in
                if state.isOpen { return true }
                state.waiting.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }
}
