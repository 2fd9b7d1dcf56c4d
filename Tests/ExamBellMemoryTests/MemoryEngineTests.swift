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
}
