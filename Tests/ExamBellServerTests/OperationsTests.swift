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
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `/metrics`, and logs that follow an end without ever showing a secret (issue 6).
@Suite("Operations", .timeLimit(.minutes(10)))
struct OperationsTests {
    /// The value of one sample line of a Prometheus exposition, like `name{label="x"} 3`.
    static func sample(_ text: String, _ name: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1))
        }
        return nil
    }

    @Test("/metrics counts connections by role, broadcasts, browsers told, the end latency and the outbox")
    func metrics() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let ids = try await client.makeExam("e1", candidates: 3, proctors: 1)
            let browsers =
                try await client.tokens("e1", role: "candidate", ids: ids).map { TestBrowser(port: port, token: $0) }
                + client.tokens("e1", role: "proctor", ids: ["e1-p1"]).map { TestBrowser(port: port, token: $0) }
            await eventually("connected") { test.node.hub.connectionCount == 4 }
            let before = String(buffer: try await client.call(.get, "/metrics", headers: [:]).body)
            #expect(Self.sample(before, #"exambell_connections{role="candidate"}"#) == 3)
            #expect(Self.sample(before, #"exambell_connections{role="proctor"}"#) == 1)
            #expect(Self.sample(before, "exambell_broadcasts_total") ?? 0 == 0)

            _ = try await client.end("e1")
            for browser in browsers { _ = await browser.frames(atLeast: 1) }
            try await eventually("the broadcast counted") {
                let text = String(buffer: try await client.call(.get, "/metrics", headers: [:]).body)
                return Self.sample(text, "exambell_broadcasts_total") == 1
            }
            let response = try await client.call(.get, "/metrics", headers: [:])
            #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
            let text = String(buffer: response.body)
            #expect(Self.sample(text, "exambell_browsers_told_total") == 4)
            #expect(Self.sample(text, "exambell_end_to_broadcast_seconds_count") == 1)
            #expect(Self.sample(text, "exambell_end_request_seconds_count") == 1)
            #expect(Self.sample(text, "exambell_outbox_backlog") == 0, "the end answered once its row was marked")
            #expect(text.contains(#"exambell_backend_errors_total{backend="database"}"#))
            browsers.forEach { $0.close() }
        }
    }

    @Test("two nodes in one process count their own backend failures: one's Redis going away shows only in its /metrics")
    func failuresPerNode() async throws {
        let lost = try await RedisTestServer.start()
        defer { lost.stop() }
        let kept = try await RedisTestServer.start()
        defer { kept.stop() }
        let failing = try await TestNode(redisURL: lost.url)
        let healthy = try await TestNode(redisURL: kept.url)
        let redisErrors = #"exambell_backend_errors_total{backend="redis"}"#
        try await failing.node.application.test(.router) { failingClient in
            try await healthy.node.application.test(.router) { healthyClient in
                #expect(try await failingClient.call(.get, "/ready", headers: [:]).status == .ok)
                lost.stop()
                #expect(try await failingClient.call(.get, "/ready", headers: [:]).status == .serviceUnavailable)
                #expect(try await healthyClient.call(.get, "/ready", headers: [:]).status == .ok)
                let failingText = String(buffer: try await failingClient.call(.get, "/metrics", headers: [:]).body)
                let healthyText = String(buffer: try await healthyClient.call(.get, "/metrics", headers: [:]).body)
                #expect((Self.sample(failingText, redisErrors) ?? 0) >= 1, "the node whose Redis went away counted it")
                #expect(Self.sample(healthyText, redisErrors) == 0, "the other node's figure is its own")
                // A call that needs the state store answers 503 with the store's code, never 500.
                _ = try await failingClient.makeExam("e1", candidates: 1)
                let roster = try await failingClient.call(.get, "/api/exams/e1/roster")
                #expect(roster.status == .serviceUnavailable)
                #expect(String(buffer: roster.body).contains(#""code":"service_unavailable""#))
            }
        }
    }

    @Test("logs on real processes follow an end from the web node to the socket node, and never show a token or secret")
    func logs() async throws {
        let trace = ["EXAMBELL_LOG_LEVEL": "trace"]
        let cluster = try await ClusterTests.Cluster.start(socketNodes: 1, webEnvironment: trace, socketEnvironment: trace)
        defer { cluster.stopAll() }
        #expect(try await cluster.api("POST", "/api/exams", #"{"examId":"e1","title":"Logs"}"#, via: cluster.adminPort).0 == 201)
        #expect(try await cluster.api("POST", "/api/exams/e1/candidates", #"{"candidates":[{"candidateId":"c1","name":"N"}]}"#).0 == 200)
        #expect(try await cluster.api("POST", "/api/exams/e1/start").0 == 200)
        let token = try await cluster.tokens("e1", role: "candidate", ids: ["c1"])[0]
        let browser = TestBrowser(port: cluster.loadBalancerPort, token: token, ackExamEnd: true)
        // The page's own calls carry the session token too.
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(cluster.loadBalancerPort)/api/answers")!)
        request.httpMethod = "PUT"
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        request.httpBody = Data(#"{"answers":{"1":"2"}}"#.utf8)
        #expect(((try await URLSession.shared.data(for: request)).1 as? HTTPURLResponse)?.statusCode == 200)
        try await eventually("connected") { try await cluster.api("GET", "/api/exams/e1").1.contains(#""connected":{"candidates":1"#) }
        let (status, body) = try await cluster.api("POST", "/api/exams/e1/end", #"{"reason":"logs"}"#, via: cluster.adminPort)
        #expect(status == 200)
        let end = try JSONDecoder().decode(EndBody.self, from: Data(body.utf8))
        #expect(await browser.frames(atLeast: 1).count == 1)
        let endId = "e1@\(end.endDatetime)"
        try await eventually("the socket node logged the broadcast") { cluster.sockets[0].process.log.contains("endId=\(endId)") }

        let webLog = cluster.web.log
        let endLine = try #require(webLog.split(separator: "\n").first { $0.contains("exam ended") && $0.contains("endId=\(endId)") })
        #expect(endLine.contains("hb.request.id="), "the end's log line carries the request id")
        let logs = [webLog, cluster.sockets[0].process.log, cluster.admin.log]
        for secret in [token, ClusterTests.adminToken, ClusterTests.secret] {
            #expect(!logs.contains { $0.contains(secret) }, "a secret appeared in a log")
        }
        #expect(webLog.count > 1000, "trace logging was on, so the check means something")
        browser.close()
    }
}
