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

/// The scenario on the Redis engine with a real redis-server, checked with redis-cli.
@Suite("End to end on Redis", .timeLimit(.minutes(10)))
struct RedisEndToEndTests {
    @Test("an end writes the exact keys and one stream entry, and every browser is told")
    func scenario() async throws {
        let redis = try await RedisTestServer.start()
        defer { redis.stop() }
        let test = try await TestNode(redisURL: redis.url)
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let ids = try await client.makeExam("e123", candidates: 3, proctors: 1)
            let tokens =
                try await client.tokens("e123", role: "candidate", ids: ids)
                + client.tokens("e123", role: "proctor", ids: ["e123-p1"])
            let browsers = tokens.map { TestBrowser(port: port, token: $0, ackExamEnd: true) }
            await eventually("connected") { test.node.hub.connectionCount == 4 }
            let end = try await client.end("e123")
            for browser in browsers {
                #expect(await browser.frames(atLeast: 1) == [expectedFrame("e123", end.endDatetime)])
            }
            #expect(try await redis.cli("GET", "exam_plan:e123") == [#"{"status":"completed","end_datetime":"\#(end.endDatetime)"}"#])
            let candidateKey = try await redis.cli("GET", "exam_candidate:e123-c1:status")
            #expect(candidateKey.count == 1)
            #expect(candidateKey.first?.hasPrefix(#"{"status":"completed","last_active_time":""#) == true)
            let entries = try await redis.cli("XRANGE", "queue:exam_end", "-", "+")
            #expect(entries.count == 3, "one entry: id, field, value")
            #expect(entries.dropFirst().first == "payload")
            #expect(entries.last == #"{"type":"exam_end","examId":"e123","status":"completed","timestamp":"\#(end.endDatetime)"}"#)
            try await eventually("acks counted") {
                String(buffer: try await client.call(.get, "/api/exams/e123").body).contains(#""acknowledged":3"#)
            }
            browsers.forEach { $0.close() }
        }
    }

    @Test("a socket ticket opens one socket in the whole cluster: a second node refuses it (401 ticket_used); Redis keeps it until it expires")
    func ticketsOncePerCluster() async throws {
        let redis = try await RedisTestServer.start()
        defer { redis.stop() }
        let first = try await TestNode(redisURL: redis.url)
        let second = try await TestNode(store: first.backends.store, redisURL: redis.url, nodeId: "socket-2")
        try await first.node.application.test(.live) { client in
            let port = try #require(client.port)
            let ids = try await client.makeExam("e1", candidates: 1)
            let token = try await client.tokens("e1", role: "candidate", ids: ids)[0]
            try await second.node.application.test(.live) { other in
                let otherPort = try #require(other.port)
                let answer = try await client.call(.post, "/api/socket-ticket", headers: [.authorization: "Bearer \(token)"])
                let ticket = try decode(TicketBody.self, answer).ticket
                let opened = try await RawWebSocket(port: otherPort, query: "ticket=\(ticket)")
                defer { opened.close() }
                for node in [port, otherPort] {
                    let refused = try await RawWebSocket.refusal(port: node, query: "ticket=\(ticket)")
                    #expect(refused.head.hasPrefix("HTTP/1.1 401"), "\(refused.head)")
                    #expect(refused.body.contains(#""code":"ticket_used""#), "\(refused.body)")
                }
                let keys = try await redis.cli("KEYS", "ticket_used:*")
                #expect(keys.count == 1, "\(keys)")
                let ttl = Int(try await redis.cli("TTL", keys.first ?? "").first ?? "") ?? -1
                #expect((1...30).contains(ttl), "kept until the ticket expires, not for good: TTL \(ttl)")
                // A fresh ticket opens a socket on the node the first one was refused by.
                let fresh = try decode(
                    TicketBody.self, try await client.call(.post, "/api/socket-ticket", headers: [.authorization: "Bearer \(token)"]))
                let again = try await RawWebSocket(port: port, query: "ticket=\(fresh.ticket)")
                again.close()
            }
        }
    }

    @Test(
        "Redis goes down at a fixed point of an end (the DB committed, nothing written to Redis yet): 200; once Redis is back, keys are written and browsers told"
    )
    func outage() async throws {
        let redis = try await RedisTestServer.start()
        defer { redis.stop() }
        let reached = Mutex(0)
        let test = try await TestNode(
            redisURL: redis.url,
            faults: FaultPoints { point in
                guard point == .afterEndCommit else { return }
                reached.withLock { $0 += 1 }
                redis.stop()
            })
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let ids = try await client.makeExam("e1", candidates: 2, proctors: 1)
            let tokens = try await client.tokens("e1", role: "candidate", ids: ids) + client.tokens("e1", role: "proctor", ids: ["e1-p1"])
            let browsers = tokens.map { TestBrowser(port: port, token: $0) }
            await eventually("connected") { test.node.hub.connectionCount == 3 }

            let end = try await client.end("e1", reason: "during outage")
            #expect(reached.withLock { $0 } == 1, "Redis stopped inside the end, after its commit")
            #expect(end.result == "completed")
            #expect(try await test.backends.store.exam("e1")?.status == .completed, "the DB committed")
            let second = try await client.end("e1")
            #expect(second.endDatetime == end.endDatetime)
            let metrics = String(buffer: try await client.call(.get, "/metrics", headers: [:]).body)
            let redisErrors = OperationsTests.sample(metrics, #"exambell_backend_errors_total{backend="redis"}"#) ?? 0
            #expect(redisErrors > 0, "the failed Redis calls are counted")

            try await redis.start()
            for browser in browsers {
                #expect(await browser.frames(atLeast: 1, within: .seconds(30)) == [expectedFrame("e1", end.endDatetime)])
            }
            try await eventually("state keys written from the outbox", within: .seconds(30)) {
                try await redis.cli("GET", "exam_plan:e1") == [#"{"status":"completed","end_datetime":"\#(end.endDatetime)"}"#]
            }
            try await eventually("outbox drained", within: .seconds(30)) { try await test.backends.store.outboxBacklog() == 0 }
            browsers.forEach { $0.close() }
        }
    }
}
