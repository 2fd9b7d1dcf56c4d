import ExamBellCore
import ExamBellRedis
import ExamBellTestSupport
import Foundation
import RedisClient
import Testing

/// The Redis engine against a real redis-server: the same conformance suites as the memory
/// engine, plus what only a real server shows (reconnects, exact shapes, stream trimming).
@Suite("Redis engine", .timeLimit(.minutes(10)))
struct RedisEngineTests {
    func client(_ server: RedisTestServer) throws -> RedisClient {
        RedisClient(configuration: try Self.configuration(server.url))
    }

    /// The client's bounds for these tests: 20 s to connect and per command instead of the
    /// product's 5 s. This suite starts with the whole test run's first burst (about a
    /// hundred tests starting servers and PostgreSQL databases at once on two cores), where a
    /// local round trip was seen to pass 5 s in 6 of 7 full runs on one machine, the commit
    /// before this change included; alone the suite passes in about a second. The 5 s bounds
    /// themselves are the product's and are exercised by the outage tests.
    static func configuration(_ url: String) throws -> RedisConfiguration {
        var configuration = try RedisConfiguration(url: url)
        configuration.connectTimeout = .seconds(20)
        configuration.commandTimeout = .seconds(20)
        return configuration
    }

    @Test("state store conformance", arguments: StateStoreConformance.cases)
    func state(_ check: StateStoreConformance.Case) async throws {
        let server = try await RedisTestServer.start()
        defer { server.stop() }
        try await check.run(RedisStateStore(client: try client(server)))
    }

    @Test("queue conformance", arguments: QueueConformance.cases)
    func queue(_ check: QueueConformance.Case) async throws {
        let server = try await RedisTestServer.start()
        defer { server.stop() }
        let queue = RedisStreamsQueue(client: try client(server))
        try await check.run(queue)
        queue.shutdown()
    }

    @Test("queue:exam_end and queue:exam_events on one client are separate streams with their own groups")
    func twoStreams() async throws {
        let server = try await RedisTestServer.start()
        defer { server.stop() }
        let client = try client(server)
        let ends = RedisStreamsQueue(client: client)
        let events = RedisStreamsQueue(client: client, stream: QueueStream.events)
        try await ends.createGroup("node")
        try await events.createGroup("node")
        let time = Timestamp(iso8601: "2024-01-16T18:00:00Z")!
        try await events.publish(.candidateEnd(CandidateEndEvent(examId: "e1", candidateIds: ["c1"], timestamp: time)))
        try await ends.publish(ExamEndQueueMessage(examId: "e1", timestamp: time))
        let fromEvents = try await events.read(group: "node", limit: 10, timeout: .seconds(1))
        let fromEnds = try await ends.read(group: "node", limit: 10, timeout: .seconds(1))
        #expect(fromEvents.compactMap(\.event) == [.candidateEnd(CandidateEndEvent(examId: "e1", candidateIds: ["c1"], timestamp: time))])
        #expect(fromEnds.compactMap(\.message) == [ExamEndQueueMessage(examId: "e1", timestamp: time)])
        #expect(try await server.cli("XLEN", "queue:exam_events") == ["1"])
        #expect(try await server.cli("XLEN", "queue:exam_end") == ["1"])
        ends.shutdown()
        events.shutdown()
    }

    @Test("pipelining: 10,000 commands in one round trip, replies in order")
    func pipelining() async throws {
        let server = try await RedisTestServer.start()
        defer { server.stop() }
        let client = try client(server)
        let replies = try await client.pipeline((0..<10_000).map { ["ECHO", "v\($0)"] })
        #expect(replies.map(\.string) == (0..<10_000).map { "v\($0)" })
        await #expect(throws: RedisError.self) { try await client.send(["NOSUCHCOMMAND"]) }
        #expect(try await client.send(["PING"]) == .simpleString("PONG"), "an error reply leaves the connection usable")
    }

    @Test("AUTH and SELECT come from the URL")
    func authAndSelect() async throws {
        let server = try await RedisTestServer.start()
        defer { server.stop() }
        let admin = try client(server)
        try await admin.send(["CONFIG", "SET", "requirepass", "s3cret"])
        let wrong = RedisClient(configuration: try Self.configuration("redis://:nope@127.0.0.1:\(server.port)/3"))
        await #expect(throws: (any Error).self) { try await wrong.send(["PING"]) }
        let right = RedisClient(configuration: try Self.configuration("redis://:s3cret@127.0.0.1:\(server.port)/3"))
        try await right.send(["SET", "k", "in-db-3"])
        let zero = RedisClient(configuration: try Self.configuration("redis://:s3cret@127.0.0.1:\(server.port)/0"))
        #expect(try await zero.send(["GET", "k"]).isNull)
        #expect(try await right.send(["GET", "k"]).string == "in-db-3")
    }

    @Test("the client reconnects after Redis restarts, without being re-made")
    func reconnect() async throws {
        let server = try await RedisTestServer.start()
        defer { server.stop() }
        let client = try client(server)
        let state = RedisStateStore(client: client)
        try await state.set([("k", "before")])
        server.stop()
        await #expect(throws: (any Error).self) { try await state.set([("k", "during")]) }
        let down = await #expect(throws: StoreError.self, "fails fast while down") { try await state.get(["k"]) }
        #expect(down?.isUnavailable == true, "a store error the server answers with 503")
        try await server.start()
        var value: String?? = nil
        for _ in 0..<100 {
            if let read = try? await state.get(["k"]) {
                value = read.first
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(value == .some(nil), "reconnected to the restarted (empty) server")
    }

    @Test("a restarted consumer replays its pending entries; the stream is trimmed")
    func pendingAndTrim() async throws {
        let server = try await RedisTestServer.start()
        defer { server.stop() }
        let first = RedisStreamsQueue(client: try client(server), maxLength: 100)
        try await first.createGroup("node-1")
        try await first.publish(ExamEndQueueMessage(examId: "e1", timestamp: .now()))
        let taken = try await first.read(group: "node-1", limit: 10, timeout: .seconds(1))
        #expect(taken.count == 1)
        first.shutdown()
        // A new process for the same node: the entry it took but never acknowledged comes back.
        let second = RedisStreamsQueue(client: try client(server), maxLength: 100)
        try await second.createGroup("node-1")
        #expect(try await second.pending(group: "node-1", limit: 10).map(\.id) == taken.map(\.id))
        try await second.acknowledge(group: "node-1", ids: taken.map(\.id))
        #expect(try await second.pending(group: "node-1", limit: 10).isEmpty)
        for i in 0..<1000 {
            try await second.publish(ExamEndQueueMessage(examId: "t\(i)", timestamp: .now()))
        }
        let length = try await RedisClient(configuration: try Self.configuration(server.url)).send(["XLEN", "queue:exam_end"])
        #expect((length.integer ?? 0) < 300, "MAXLEN ~ 100 keeps the stream near 100 entries, got \(length)")
        second.shutdown()
    }
}
