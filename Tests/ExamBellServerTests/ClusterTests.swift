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

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

/// ExamBell the way the seed draws it: PostgreSQL, Redis, a web node and two socket nodes as
/// separate `exambell` processes, with real WebSocket browsers.
@Suite("Separate processes on PostgreSQL and Redis", .timeLimit(.minutes(4)))
struct ClusterTests {
    static let adminToken = "cluster-admin-token"
    static let secret = "cluster-session-secret-0123456789"

    func frame(_ examId: String, _ end: String) -> String {
        #"{"type":"exam_end","examId":"\#(examId)","message":"시험이 종료되었습니다.","timestamp":"\#(end)"}"#
    }

    @Test("an end reaches browsers on both socket nodes; a node down during the end tells its browsers after restart; a deleted key comes back")
    func endAcrossNodes() async throws {
        let cluster = try await Cluster.start(socketNodes: 2)
        defer { cluster.stopAll() }
        let candidates = (1...4).map { #"{"candidateId":"e1-c\#($0)","name":"C\#($0)"}"# }.joined(separator: ",")
        // The admin server creates the exam, over HTTP only, through the load balancer.
        #expect(try await cluster.api("POST", "/api/exams", #"{"examId":"e1","title":"Cluster"}"#, via: cluster.adminPort).0 == 201)
        #expect(try await cluster.api("GET", "/api/exams", via: cluster.adminPort).1.contains(#""examId":"e1""#))
        // Through the admin server and nginx, wrong tokens count against the operator's
        // address, not against the proxies': a guesser locks out only itself.
        for _ in 0..<20 {
            #expect(try await cluster.api("GET", "/api/exams", via: cluster.adminPort, bearer: "guess", forwardedFor: "203.0.113.7").0 == 401)
        }
        #expect(try await cluster.api("GET", "/api/exams", via: cluster.adminPort, bearer: "guess", forwardedFor: "203.0.113.7").0 == 429)
        #expect(try await cluster.api("GET", "/api/exams", via: cluster.adminPort, bearer: "guess", forwardedFor: "203.0.113.8").0 == 401)
        #expect(try await cluster.api("GET", "/api/exams", via: cluster.adminPort).0 == 200)
        #expect(try await cluster.api("POST", "/api/exams/e1/candidates", #"{"candidates":[\#(candidates)]}"#).0 == 200)
        #expect(try await cluster.api("POST", "/api/exams/e1/proctors", #"{"proctors":[{"proctorId":"e1-p1","name":"P"}]}"#).0 == 200)
        #expect(try await cluster.api("POST", "/api/exams/e1/start").0 == 200)
        let tokens = try await cluster.tokens("e1", role: "candidate", ids: ["e1-c1", "e1-c2", "e1-c3", "e1-c4"])
        let proctor = try await cluster.tokens("e1", role: "proctor", ids: ["e1-p1"])[0]
        let node1 = cluster.sockets[0].port
        let node2 = cluster.sockets[1].port
        let onNode1 = [TestBrowser(port: node1, token: tokens[0]), TestBrowser(port: node1, token: proctor)]
        let onNode2 = [TestBrowser(port: node2, token: tokens[1]), TestBrowser(port: node2, token: tokens[2])]
        // One more browser comes in through the load balancer, as browsers do in production.
        let throughLoadBalancer = TestBrowser(port: cluster.loadBalancerPort, token: tokens[3])
        try await eventually("browsers on both nodes counted by the web node") {
            try await cluster.api("GET", "/api/exams/e1").1.contains(#""connected":{"candidates":4,"proctors":1}"#)
        }

        // Socket node 2 crashes; its browsers lose their connection.
        cluster.sockets[1].process.stop(SIGKILL)
        for browser in onNode2 { _ = await browser.result() }

        let (status, body) = try await cluster.api("POST", "/api/exams/e1/end", #"{"reason":"cluster test"}"#)
        #expect(status == 200)
        let end = try JSONDecoder().decode(EndBody.self, from: Data(body.utf8))
        for browser in onNode1 + [throughLoadBalancer] {
            #expect(await browser.frames(atLeast: 1) == [frame("e1", end.endDatetime)])
        }
        // PostgreSQL, Redis and the socket message agree on the one end time.
        let stored = try await PostgresExamStore.withStore(url: cluster.databaseURL) { try await $0.exam("e1")?.endDatetime?.iso8601 }
        #expect(stored == end.endDatetime)
        #expect(try await cluster.redis.cli("GET", "exam_plan:e1") == [#"{"status":"completed","end_datetime":"\#(end.endDatetime)"}"#])

        // Node 2 comes back; its browsers reconnect and are told.
        try cluster.sockets[1].process.start()
        try await cluster.waitHealthy(node2)
        let reconnected = [TestBrowser(port: node2, token: tokens[1]), TestBrowser(port: node2, token: tokens[2])]
        for browser in reconnected {
            #expect(await browser.frames(atLeast: 1) == [frame("e1", end.endDatetime)])
        }

        // A deleted key comes back from the DB (sync every second here; 30 s by default).
        _ = try await cluster.redis.cli("DEL", "exam_plan:e1")
        try await eventually("exam_plan:e1 rewritten by final sync", within: .seconds(60)) {
            try await cluster.redis.cli("GET", "exam_plan:e1") == [#"{"status":"completed","end_datetime":"\#(end.endDatetime)"}"#]
        }
        (onNode1 + onNode2 + reconnected + [throughLoadBalancer]).forEach { $0.close() }
    }

    @Test("a web node killed after its commit and before its publish: another web node's outbox relay publishes")
    func webNodeDiesBeforePublish() async throws {
        let cluster = try await Cluster.start(socketNodes: 1, webEnvironment: ["EXAMBELL_TEST_FAULT": "after-commit"])
        defer { cluster.stopAll() }
        let (healthy, _) = try await cluster.addWebNode("web-2")
        defer { healthy.stop() }
        #expect(try await cluster.api("POST", "/api/exams", #"{"examId":"e1","title":"Fault"}"#).0 == 201)
        #expect(try await cluster.api("POST", "/api/exams/e1/candidates", #"{"candidates":[{"candidateId":"e1-c1","name":"C"}]}"#).0 == 200)
        #expect(try await cluster.api("POST", "/api/exams/e1/start").0 == 200)
        let token = try await cluster.tokens("e1", role: "candidate", ids: ["e1-c1"])[0]
        let browser = TestBrowser(port: cluster.sockets[0].port, token: token)
        try await eventually("browser connected") {
            try await cluster.api("GET", "/api/exams/e1").1.contains(#""connected":{"candidates":1"#)
        }
        // The faulty node commits the end, then dies before publishing: the caller gets no answer.
        await #expect(throws: (any Error).self) {
            try await cluster.api("POST", "/api/exams/e1/end", #"{"reason":"fault"}"#, via: cluster.webPort)
        }
        let stored = try await PostgresExamStore.withStore(url: cluster.databaseURL) { try await $0.exam("e1")?.endDatetime }
        let end = try #require(stored, "the end committed before the crash")
        #expect(await browser.frames(atLeast: 1, within: .seconds(30)) == [frame("e1", end.iso8601)], "the other node's relay published it")
        browser.close()
    }

    @Test(
        "two socket nodes started without --node-id and without the admin token: each has its own consumer group and an end reaches browsers on both; then the exam's sessions close on every node",
        .timeLimit(.minutes(2))
    )
    func unnamedSocketNodes() async throws {
        let closing = ["EXAMBELL_ANSWER_GRACE": "0", "EXAMBELL_SESSION_CLOSE_AFTER": "1"]
        let cluster = try await Cluster.start(socketNodes: 2, namedSockets: false, webEnvironment: closing, socketEnvironment: closing)
        defer { cluster.stopAll() }
        #expect(try await cluster.api("POST", "/api/exams", #"{"examId":"e1","title":"Unnamed"}"#).0 == 201)
        let people = #"{"candidates":[{"candidateId":"e1-c1","name":"A"},{"candidateId":"e1-c2","name":"B"}]}"#
        #expect(try await cluster.api("POST", "/api/exams/e1/candidates", people).0 == 200)
        #expect(try await cluster.api("POST", "/api/exams/e1/start").0 == 200)
        let tokens = try await cluster.tokens("e1", role: "candidate", ids: ["e1-c1", "e1-c2"])
        let browsers = [
            TestBrowser(port: cluster.sockets[0].port, token: tokens[0]), TestBrowser(port: cluster.sockets[1].port, token: tokens[1]),
        ]
        try await eventually("browsers on both nodes counted") {
            try await cluster.api("GET", "/api/exams/e1").1.contains(#""connected":{"candidates":2"#)
        }
        let groups = try await cluster.redis.cli("XINFO", "GROUPS", "queue:exam_end")
        let names = zip(groups, groups.dropFirst()).filter { $0.0 == "name" }.map(\.1)
        #expect(names.count == 2 && Set(names).count == 2, "a consumer group of its own per node: \(names)")
        #expect(names.allSatisfy { $0.hasPrefix("socket-") })
        let (status, body) = try await cluster.api("POST", "/api/exams/e1/end", #"{"reason":"unnamed"}"#)
        #expect(status == 200)
        let end = try JSONDecoder().decode(EndBody.self, from: Data(body.utf8))
        for browser in browsers {
            #expect(await browser.frames(atLeast: 1) == [frame("e1", end.endDatetime)])
            #expect(await browser.frames(over: .milliseconds(500)).count == 1)
        }
        for (process, _) in cluster.sockets {
            #expect(!process.log.contains(ClusterTests.adminToken), "a socket node never holds the admin token")
        }
        browsers.forEach { $0.close() }
        // A second after the end the exam's tokens are refused: by the web node (it asks
        // PostgreSQL) and by each socket node (it asks Redis's plan key), within their 5 s recheck.
        try await eventually("the web node closed the session") {
            try await cluster.api("GET", "/api/session", bearer: tokens[0]).0 == 401
        }
        #expect(try await cluster.api("GET", "/api/session", bearer: tokens[0]).1.contains(#""code":"session_closed""#))
        for (_, port) in cluster.sockets {
            try await eventually("socket node :\(port) closed the session") {
                try await RawWebSocket.answer(port: port, token: tokens[1]).hasPrefix("HTTP/1.1 401")
            }
            #expect(try await RawWebSocket.refusal(port: port, token: tokens[1]).body.contains(#""code":"session_closed""#))
        }
    }

    @Test(
        "100 concurrent ends on separate connections to two web processes: one transition, one queue entry, one audit row, one frame per browser",
        .timeLimit(.minutes(2))
    )
    func concurrentEndsAcrossWebNodes() async throws {
        let cluster = try await Cluster.start(socketNodes: 1)
        defer { cluster.stopAll() }
        let (second, secondPort) = try await cluster.addWebNode("web-2")
        defer { second.stop() }
        #expect(try await cluster.api("POST", "/api/exams", #"{"examId":"e1","title":"Race"}"#).0 == 201)
        let people = (1...3).map { #"{"candidateId":"e1-c\#($0)","name":"C"}"# }.joined(separator: ",")
        #expect(try await cluster.api("POST", "/api/exams/e1/candidates", #"{"candidates":[\#(people)]}"#).0 == 200)
        #expect(try await cluster.api("POST", "/api/exams/e1/start").0 == 200)
        let tokens = try await cluster.tokens("e1", role: "candidate", ids: ["e1-c1", "e1-c2", "e1-c3"])
        let browsers = tokens.map { TestBrowser(port: cluster.sockets[0].port, token: $0) }
        try await eventually("browsers connected") {
            try await cluster.api("GET", "/api/exams/e1").1.contains(#""connected":{"candidates":3"#)
        }
        let ports = [cluster.webPort, secondPort]
        let results = try await withThrowingTaskGroup(of: EndBody.self) { group in
            for index in 0..<100 {
                group.addTask {
                    let (status, body) = try await callOnOwnConnection(
                        port: ports[index % 2], "POST", "/api/exams/e1/end", json: #"{"reason":"race"}"#, token: ClusterTests.adminToken
                    )
                    #expect(status == 200, "\(body)")
                    return try JSONDecoder().decode(EndBody.self, from: Data(body.utf8))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter { $0.result == "completed" }.count == 1)
        #expect(results.filter { $0.result == "already_completed" }.count == 99)
        let ends = Set(results.map(\.endDatetime))
        #expect(ends.count == 1, "every answer carries the one end time")
        let end = try #require(ends.first)
        #expect(try await cluster.redis.cli("XLEN", "queue:exam_end") == ["1"], "one queue entry")
        #expect(try await cluster.redis.cli("GET", "exam_plan:e1") == [#"{"status":"completed","end_datetime":"\#(end)"}"#])
        let auditedEnds = try await PostgresExamStore.withStore(url: cluster.databaseURL) { store in
            try await store.auditLog(examId: "e1").filter { $0.action == "end" }.count
        }
        #expect(auditedEnds == 1, "one audit row")
        for browser in browsers {
            #expect(await browser.frames(atLeast: 1) == [frame("e1", end)])
            #expect(await browser.frames(over: .seconds(1)).count == 1, "one frame per browser over the whole window")
        }
        browsers.forEach { $0.close() }
    }

    @Test(
        "exam day across two web nodes and two socket nodes: time changes and single ends reach browsers on both nodes, announcements, receipts",
        .timeLimit(.minutes(2))
    )
    func examDayAcrossNodes() async throws {
        let cluster = try await Cluster.start(socketNodes: 2)
        defer { cluster.stopAll() }
        let (second, secondPort) = try await cluster.addWebNode("web-2")
        defer { second.stop() }
        let end = Timestamp.now().adding(seconds: 3600)
        #expect(
            try await cluster.api("POST", "/api/exams", #"{"examId":"d1","title":"Day","scheduledEndDatetime":"\#(end.iso8601)"}"#).0 == 201
        )
        let people = (1...4).map { #"{"candidateId":"d1-c\#($0)","name":"C"}"# }.joined(separator: ",")
        #expect(try await cluster.api("POST", "/api/exams/d1/candidates", #"{"candidates":[\#(people)]}"#).0 == 200)
        #expect(try await cluster.api("POST", "/api/exams/d1/start").0 == 200)
        let tokens = try await cluster.tokens("d1", role: "candidate", ids: ["d1-c1", "d1-c2", "d1-c3", "d1-c4"])
        let (node1, node2) = (cluster.sockets[0].port, cluster.sockets[1].port)
        let browsers = [
            TestBrowser(port: node1, token: tokens[0], ackExamEnd: true, reply: ExamDayTests.page),
            TestBrowser(port: node2, token: tokens[1], ackExamEnd: true, reply: ExamDayTests.page),
            TestBrowser(port: node1, token: tokens[2], ackExamEnd: true, reply: ExamDayTests.page),
            TestBrowser(port: node2, token: tokens[3], ackExamEnd: true, reply: ExamDayTests.page),
        ]
        try await eventually("browsers on both nodes counted") {
            try await cluster.api("GET", "/api/exams/d1").1.contains(#""connected":{"candidates":4"#)
        }

        // Everyone gets 10 more minutes, asked of one web node; c1 (node 1) and c2 (node 2) 5 more, of the other.
        let (everyone, _) = try await callOnOwnConnection(
            port: cluster.webPort, "POST", "/api/exams/d1/time", json: #"{"addMinutes":10,"reason":"power cut"}"#,
            token: ClusterTests.adminToken
        )
        #expect(everyone == 200)
        let tenMore = end.adding(seconds: 600).iso8601
        for browser in browsers {
            #expect(await browser.frames(atLeast: 1) == [#"{"type":"exam_time","examId":"d1","scheduledEndDatetime":"\#(tenMore)"}"#])
        }
        let (listed, _) = try await callOnOwnConnection(
            port: secondPort, "POST", "/api/exams/d1/time", json: #"{"addMinutes":5,"candidateIds":["d1-c1","d1-c2"],"reason":"accommodation"}"#,
            token: ClusterTests.adminToken
        )
        #expect(listed == 200)
        let fifteenMore = end.adding(seconds: 900).iso8601
        for browser in browsers.prefix(2) {
            #expect(await browser.frames(atLeast: 2).last == #"{"type":"exam_time","examId":"d1","scheduledEndDatetime":"\#(fifteenMore)"}"#)
        }
        #expect(await browsers[2].frames(over: .milliseconds(300)).count == 1, "c3 keeps the exam's time")

        // c1 (node 1) and c2 (node 2) end alone, through different web nodes: only their browsers are told.
        var ownEnds: [String] = []
        for (index, port) in [(0, cluster.webPort), (1, secondPort)] {
            let (status, body) = try await callOnOwnConnection(
                port: port, "POST", "/api/exams/d1/candidates/d1-c\(index + 1)/end", json: #"{"reason":"ill"}"#, token: ClusterTests.adminToken
            )
            #expect(status == 200)
            let time = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])["endDatetime"] as? String
            ownEnds.append(try #require(time))
            #expect(await browsers[index].frames(atLeast: 3).last == frame("d1", ownEnds[index]))
        }
        #expect(await browsers[3].frames(over: .milliseconds(300)).count == 1, "c4 keeps working")
        #expect(try await cluster.redis.cli("GET", "exam_candidate:d1-c2:status") == [#"{"status":"completed","last_active_time":"\#(ownEnds[1])"}"#])

        // An announcement reaches the candidates still working on both nodes.
        #expect(try await cluster.api("POST", "/api/exams/d1/announcements", #"{"message":"10분 남았습니다."}"#).0 == 200)
        for browser in browsers.suffix(2) {
            #expect(await browser.frames(atLeast: 2).last?.contains(#""type":"announcement""#) == true)
        }

        // The exam's end tells the two left; every receipt is recorded; the DB holds each one's time.
        let (status, body) = try await cluster.api("POST", "/api/exams/d1/end", #"{"reason":"done"}"#)
        #expect(status == 200)
        let examEnd = try JSONDecoder().decode(EndBody.self, from: Data(body.utf8)).endDatetime
        for browser in browsers.suffix(2) {
            #expect(await browser.frames(atLeast: 3).last == frame("d1", examEnd))
        }
        try await eventually("told and locked by all four, over both socket nodes", within: .seconds(30)) {
            try await cluster.api("GET", "/api/exams/d1/delivery").1.contains(#""counts":{"candidates":4,"locked":4,"saved":0,"told":4}"#)
        }
        try await PostgresExamStore.withStore(url: cluster.databaseURL) { store in
            // The exam's end answered once the candidates' rows held it.
            let rows = try await store.candidates(examId: "d1")
            #expect(rows.map { $0.lastActiveTime?.iso8601 } == [ownEnds[0], ownEnds[1], examEnd, examEnd])
            try await eventually("final sync copied the locks into the DB", within: .seconds(30)) {
                try await store.candidates(examId: "d1").allSatisfy { $0.lockedAt != nil }
            }
        }
        #expect(try await cluster.redis.cli("XLEN", "queue:exam_end") == ["1"], "the exam_end stream holds the exam's one end only")
        browsers.forEach { $0.close() }
    }

    @Test("a web node refuses to start without the admin token, naming it")
    func webNeedsAdminToken() async throws {
        let redis = try await RedisTestServer.start()
        defer { redis.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("exambell-web-token-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let process = try Cluster.node(
            "web", port: try RedisTestServer.freePort(), databaseURL: try await PostgresTestDatabase.freshDatabaseURL(), redisURL: redis.url,
            directory: directory, adminToken: false
        )
        try await eventually("the refusal is printed") { process.log.contains("--admin-token") }
        process.stop(SIGKILL)
    }

    @Test("a split node refuses to start without PostgreSQL and Redis, saying why")
    func refusesWithoutSharedEngines() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("exambell-refuse-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let process = TestProcess(
            arguments: [try TestProcess.exambellBinary(), "web"], environment: ["EXAMBELL_PORT": "0"],
            logPath: directory.appendingPathComponent("web.log").path
        )
        try process.start()
        for _ in 0..<100 where !process.log.contains("postgres") {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(process.log.contains("--database postgres://"))
        process.stop(SIGKILL)
    }
}
