import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellRuntime
import ExamBellSQL
import ExamBellServer
import ExamBellSocket
import ExamBellTestSupport
import ExamBellWeb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// An exam with a planned end ends itself then, once, however many web nodes watch it.
@Suite("Scheduled end", .timeLimit(.minutes(10)))
struct ScheduledEndTests {
    struct ExamBody: Decodable {
        var status: String
        var endDatetime: String?
        var endedBy: String?
    }

    @Test("two web nodes on one PostgreSQL and one Redis: the exam ends itself at its time, exactly once, by `scheduler`")
    func endsOnceAcrossNodes() async throws {
        let redis = try await RedisTestServer.start()
        defer { redis.stop() }
        let databaseURL = try await PostgresTestDatabase.freshDatabaseURL()
        try await PostgresExamStore.withStore(url: databaseURL) { storeA in
            try await PostgresExamStore.withStore(url: databaseURL) { storeB in
                let nodeA = try await TestNode(store: storeA, redisURL: redis.url, nodeId: "node-a")
                let nodeB = try await TestNode(store: storeB, redisURL: redis.url, nodeId: "node-b")
                try await nodeA.node.application.test(.live) { a in
                    try await nodeB.node.application.test(.live) { b in
                        // Far enough ahead that the exam is made, filled and started before it (a loaded
                        // machine took over 2 s for the first call), near enough for a short test.
                        let scheduled = Timestamp.now().adding(seconds: 8)
                        let created = try await a.call(
                            .post, "/api/exams", json: #"{"examId":"e1","title":"T","scheduledEndDatetime":"\#(scheduled.iso8601)"}"#
                        )
                        #expect(created.status == .created)
                        _ = try await a.call(.post, "/api/exams/e1/candidates", json: #"{"candidates":[{"candidateId":"c1","name":"N"}]}"#)
                        #expect(try await a.call(.post, "/api/exams/e1/start").status == .ok)
                        let token = try await b.tokens("e1", role: "candidate", ids: ["c1"])[0]
                        let onA = TestBrowser(port: try #require(a.port), token: token)
                        let onB = TestBrowser(port: try #require(b.port), token: token)
                        await eventually("both connected") { nodeA.node.hub.connectionCount == 1 && nodeB.node.hub.connectionCount == 1 }

                        try await eventually("the exam ended by itself", within: .seconds(20)) {
                            try decode(ExamBody.self, try await b.call(.get, "/api/exams/e1")).status == "completed"
                        }
                        let exam = try decode(ExamBody.self, try await a.call(.get, "/api/exams/e1"))
                        #expect(exam.endedBy == "scheduler")
                        let end = try #require(exam.endDatetime.flatMap(Timestamp.init(iso8601:)))
                        #expect(end >= scheduled, "not before its time")
                        for browser in [onA, onB] {
                            #expect(await browser.frames(atLeast: 1).first?.contains(#""type":"exam_end""#) == true)
                        }
                        // Both schedulers kept running meanwhile; give them a few more passes.
                        try await Task.sleep(for: .milliseconds(600))
                        let audit = String(buffer: try await a.call(.get, "/api/exams/e1/audit").body)
                        #expect(audit.components(separatedBy: #""action":"end""#).count - 1 == 1, "one end row")
                        #expect(audit.contains(#""actor":"scheduler""#))
                        #expect(try await redis.cli("XLEN", "queue:exam_end") == ["1"], "one queue entry")
                        onA.close()
                        onB.close()
                    }
                }
            }
        }
    }

    @Test("a planned end in the past is refused with 400")
    func pastEndRefused() async throws {
        let app = try await TestNode().node.application
        try await app.test(.router) { client in
            let response = try await client.call(
                .post, "/api/exams", json: #"{"examId":"e1","title":"T","scheduledEndDatetime":"2020-01-01T00:00:00Z"}"#
            )
            #expect(response.status == .badRequest)
            #expect(try decode(ErrorBody.self, response).error.code == "invalid_scheduled_end")
        }
    }
}
