import ExamBellCore
import ExamBellServer
import ExamBellTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
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

    @Test("Redis down during an end: the end commits and answers 200; once Redis is back, keys are written and browsers told")
    func outage() async throws {
        let redis = try await RedisTestServer.start()
        defer { redis.stop() }
        let test = try await TestNode(redisURL: redis.url)
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let ids = try await client.makeExam("e1", candidates: 2, proctors: 1)
            let tokens = try await client.tokens("e1", role: "candidate", ids: ids) + client.tokens("e1", role: "proctor", ids: ["e1-p1"])
            let browsers = tokens.map { TestBrowser(port: port, token: $0) }
            await eventually("connected") { test.node.hub.connectionCount == 3 }

            redis.stop()
            let end = try await client.end("e1", reason: "during outage")
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
