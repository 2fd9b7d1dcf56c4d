import ExamBellCore
import ExamBellRuntime
import ExamBellServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// On a node running both roles, the end's own bookkeeping (candidates' ids, their keys, the
/// outbox row, the candidates' rows) waits until the node's hub has written the end to its
/// browsers, so that it does not share the fan-out's cores; at most a bound, so a consumer
/// that is behind never holds the end's answer.
@Suite("The end's bookkeeping after the local fan-out", .timeLimit(.minutes(5)))
struct FanOutHandOffTests {
    @Test("a hand-off written before, during or never within the bound of its wait; an end nobody expects")
    func handOff() async throws {
        let handOff = FanOutHandOff()
        let before = FanOutHandOff.key(examId: "e1", at: .now())
        handOff.expect(before)
        handOff.written(before)
        #expect(await handOff.wait(before, atMost: .seconds(30)), "written before its wait")

        let during = FanOutHandOff.key(examId: "e2", at: .now())
        handOff.expect(during)
        async let waited = handOff.wait(during, atMost: .seconds(30))
        try await eventually("the wait is registered") { handOff.remembered == 1 }
        handOff.written(during)
        #expect(await waited, "written while it waited")

        let never = FanOutHandOff.key(examId: "e3", at: .now())
        handOff.expect(never)
        #expect(await handOff.wait(never, atMost: .milliseconds(50)) == false, "its bound passed")

        handOff.written("not-expected@x")
        #expect(await handOff.wait("not-expected@x", atMost: .seconds(30)) == false, "nobody expected it: no wait")
        #expect(handOff.remembered == 0, "nothing is remembered once every wait returned")
    }

    @Test("a waiting hand-off's task cancelled: the wait returns at once")
    func cancelledWait() async throws {
        let handOff = FanOutHandOff()
        let key = FanOutHandOff.key(examId: "e1", at: .now())
        handOff.expect(key)
        let waiting = Task { await handOff.wait(key, atMost: .seconds(600)) }
        try await eventually("the wait is registered") { handOff.remembered == 1 }
        waiting.cancel()
        #expect(try await bounded("the cancelled wait", within: .seconds(10)) { await waiting.value } == false)
        #expect(handOff.remembered == 0)
    }

    /// A node (memory engine) whose socket consumer is held once it read the end's entry; the
    /// end request is under way in `ending`. No sync after the end and no periodic pass: only
    /// the end itself writes the candidates' keys here.
    func withEndHeldAtConsumer(
        waitingAtMost bound: Duration, _ body: @escaping @Sendable (TestNode, Task<HTTPResponse.Status, any Error>, HeldPoint) async throws -> Void
    ) async throws {
        let held = HeldPoint(.socketAfterRead)
        let test = try await TestNode(syncAfterEnd: nil, syncInterval: .zero, faults: FaultPoints(held.hook)) {
            $0.endHandOffBound = bound
        }
        try await test.node.application.test(.router) { client in
            _ = try await client.makeExam("e1", candidates: 3)
            held.arm()
            defer { held.release() }
            let ending = Task { try await client.call(.post, "/api/exams/e1/end", json: #"{"reason":"test"}"#).status }
            try await bounded("the socket node read the end's entry", within: .seconds(10)) { await held.reached() }
            try await body(test, ending, held)
        }
    }

    @Test("the candidates' keys are written only once the node's hub broadcast the end; the plan key before it")
    func keysAfterFanOut() async throws {
        try await withEndHeldAtConsumer(waitingAtMost: .seconds(600)) { test, ending, held in
            let state = test.backends.state
            #expect(try await state.plan("e1")?.status == .completed, "a browser joining now learns of the end")
            try await Task.sleep(for: .milliseconds(300))  // time the bookkeeping would have had
            #expect(try await state.candidates(["e1-c1"])["e1-c1"]?.status == .inProgress, "the keys wait for the fan-out")
            held.release()
            #expect(try await bounded("the end's answer", within: .seconds(10)) { try await ending.value } == .ok)
            let keys = try await state.candidates(["e1-c1", "e1-c2", "e1-c3"])
            #expect(keys.values.allSatisfy { $0.status == .completed } && keys.count == 3)
        }
    }

    @Test("a consumer held past the wait's bound does not hold the end's answer; the keys are written all the same")
    func boundedWait() async throws {
        try await withEndHeldAtConsumer(waitingAtMost: .milliseconds(500)) { test, ending, _ in
            #expect(try await bounded("the end's answer, the consumer still held", within: .seconds(10)) { try await ending.value } == .ok)
            let keys = try await test.backends.state.candidates(["e1-c1", "e1-c2", "e1-c3"])
            #expect(keys.values.allSatisfy { $0.status == .completed } && keys.count == 3)
            #expect(try await test.backends.store.candidates(ids: ["e1-c1"]).first?.status == .completed, "the rows settled too")
        }
    }
}
