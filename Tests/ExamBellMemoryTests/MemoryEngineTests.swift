import ExamBellCore
import ExamBellMemory
import ExamBellTestSupport
import Testing

@Suite("Memory engine", .timeLimit(.minutes(10)))
struct MemoryEngineTests {
    @Test("state store conformance", arguments: StateStoreConformance.cases)
    func state(_ check: StateStoreConformance.Case) async throws {
        try await check.run(MemoryStateStore())
    }

    @Test("queue conformance", arguments: QueueConformance.cases)
    func queue(_ check: QueueConformance.Case) async throws {
        try await check.run(MemoryQueue())
    }

    @Test("the stream is trimmed to its maximum length")
    func trimming() async throws {
        let queue = MemoryQueue(maxLength: 3)
        try await queue.createGroup("g")
        for i in 0..<10 {
            try await queue.publish(ExamEndQueueMessage(examId: "e\(i)", timestamp: .now()))
        }
        let read = try await queue.read(group: "g", limit: 100, timeout: .milliseconds(10))
        #expect(read.compactMap(\.message?.examId) == ["e7", "e8", "e9"])
    }

    @Test("lapsed locks are dropped, so used tickets' claims do not grow the table; live locks stay")
    func lapsedLocksPruned() async throws {
        let store = MemoryStateStore()
        for i in 0..<10 {
            #expect(try await store.lock("live:\(i)", owner: "a", ttl: .seconds(600)))
        }
        // A used ticket's claim is a lock that is never released and lapses.
        for i in 0..<20_000 {
            _ = try await store.lock("ticket_used:\(i)", owner: "t\(i)", ttl: .nanoseconds(1))
        }
        #expect(store.lockTableSize < 1_024, "lapsed claims kept: \(store.lockTableSize)")
        for i in 0..<10 {
            #expect(try await store.lock("live:\(i)", owner: "b", ttl: .seconds(1)) == false)
        }
        // Many live locks at once are all kept (the threshold grows with them).
        for i in 0..<3_000 {
            #expect(try await store.lock("held:\(i)", owner: "a", ttl: .seconds(600)))
        }
        #expect(store.lockTableSize >= 3_010)
        #expect(try await store.lock("held:0", owner: "b", ttl: .seconds(1)) == false)
    }
}
