import ExamBellCore
import ExamBellSQL
import ExamBellServer
import ExamBellTestSupport
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

    /// The processes of one test's cluster.
    struct Cluster {
        /// The Redis the nodes use (through sentinels: the primary they started with).
        let redis: RedisTestServer
        /// What the nodes are given: the server's URL, or the sentinels'.
        let redisURL: String
        let databaseURL: String
        let web: TestProcess
        let webPort: Int
        var sockets: [(process: TestProcess, port: Int)]
        let directory: URL
        /// nginx in front of the web and socket nodes, as in production.
        let loadBalancer: TestProcess
        let loadBalancerPort: Int
        /// `exambell admin`, reaching the web nodes through the load balancer.
        let admin: TestProcess
        let adminPort: Int

        /// Socket nodes get no admin token (they never need one); with `namedSockets` false they
        /// get no `--node-id` either and pick their own. With `sentinel`, the nodes find Redis
        /// through its sentinels (`redis+sentinel://`).
        static func start(
            socketNodes: Int, namedSockets: Bool = true, webEnvironment: [String: String] = [:],
            socketEnvironment: [String: String] = [:], sentinel: SentinelTestCluster? = nil
        ) async throws -> Cluster {
            let redis = if let sentinel { sentinel.primary } else { try await RedisTestServer.start() }
            let redisURL = sentinel?.url ?? redis.url
            let databaseURL = try await PostgresTestDatabase.freshDatabaseURL()
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("exambell-cluster-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let webPort = try RedisTestServer.freePort()
            let web = try node(
                "web", port: webPort, databaseURL: databaseURL, redisURL: redisURL, directory: directory, extra: webEnvironment
            )
            var sockets: [(TestProcess, Int)] = []
            for index in 1...socketNodes {
                let port = try RedisTestServer.freePort()
                sockets.append(
                    (
                        try node(
                            "socket", port: port, databaseURL: databaseURL, redisURL: redisURL, directory: directory,
                            nodeId: namedSockets ? "s\(index)" : nil, adminToken: false, extra: socketEnvironment
                        ), port
                    )
                )
            }
            let loadBalancerPort = try RedisTestServer.freePort()
            let loadBalancer = try startNginx(
                port: loadBalancerPort, webPorts: [webPort], socketPorts: sockets.map(\.1), directory: directory
            )
            let adminPort = try RedisTestServer.freePort()
            let admin = TestProcess(
                arguments: [try TestProcess.exambellBinary(), "admin"],
                environment: [
                    "EXAMBELL_PORT": String(adminPort), "EXAMBELL_WEB_URL": "http://127.0.0.1:\(loadBalancerPort)",
                    "EXAMBELL_LOG_LEVEL": "warning",
                ],
                logPath: directory.appendingPathComponent("admin.log").path
            )
            try admin.start()
            let cluster = Cluster(
                redis: redis, redisURL: redisURL, databaseURL: databaseURL, web: web, webPort: webPort, sockets: sockets, directory: directory,
                loadBalancer: loadBalancer, loadBalancerPort: loadBalancerPort, admin: admin, adminPort: adminPort
            )
            for port in [webPort, loadBalancerPort, adminPort] + sockets.map(\.1) { try await cluster.waitHealthy(port) }
            return cluster
        }

        static func node(
            _ role: String, port: Int, databaseURL: String, redisURL: String, directory: URL, nodeId: String? = "web",
            adminToken withAdminToken: Bool = true, extra: [String: String] = [:]
        ) throws -> TestProcess {
            var environment = [
                "EXAMBELL_PORT": String(port), "EXAMBELL_DATABASE_URL": databaseURL, "EXAMBELL_REDIS_URL": redisURL,
                "EXAMBELL_SESSION_SECRET": secret, "EXAMBELL_SYNC_INTERVAL": "1", "EXAMBELL_LOG_LEVEL": "info",
                "EXAMBELL_PUBLIC_SOCKET_URL": "ws://127.0.0.1:\(port)/ws",
                // nginx and the admin server forward for their clients (as scripts/cluster sets up).
                "EXAMBELL_TRUSTED_PROXIES": "127.0.0.1",
            ]
            if let nodeId { environment["EXAMBELL_NODE_ID"] = nodeId }
            if withAdminToken { environment["EXAMBELL_ADMIN_TOKEN"] = adminToken }
            let process = TestProcess(
                arguments: [try TestProcess.exambellBinary(), role],
                environment: environment.merging(extra) { $1 },
                logPath: directory.appendingPathComponent("\(role)-\(nodeId ?? "port\(port)").log").path
            )
            try process.start()
            return process
        }

        static func startNginx(port: Int, webPorts: [Int], socketPorts: [Int], directory: URL) throws -> TestProcess {
            guard let nginx = ProcessInfo.processInfo.environment["EXAMBELL_TEST_NGINX"], !nginx.isEmpty else {
                throw TestServerError("EXAMBELL_TEST_NGINX is not set: run the tests with scripts/test, which installs nginx")
            }
            let root = directory.path
            let config = """
                worker_processes 1;
                pid \(root)/nginx.pid;
                error_log \(root)/nginx-error.log warn;
                \(getuid() == 0 ? "user root;" : "")
                events { worker_connections 1024; }
                http {
                  access_log off;
                  client_body_temp_path \(root)/nginx-body;
                  proxy_temp_path \(root)/nginx-proxy;
                  upstream web { \(webPorts.map { "server 127.0.0.1:\($0);" }.joined(separator: " ")) }
                  upstream sockets { least_conn; \(socketPorts.map { "server 127.0.0.1:\($0);" }.joined(separator: " ")) }
                  server {
                    listen 127.0.0.1:\(port);
                    location /ws {
                      proxy_pass http://sockets;
                      proxy_http_version 1.1;
                      proxy_set_header Upgrade $http_upgrade;
                      proxy_set_header Connection "upgrade";
                      proxy_set_header Host $http_host;
                      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                      proxy_read_timeout 1h;
                    }
                    location / {
                      proxy_pass http://web; proxy_http_version 1.1; proxy_set_header Connection "";
                      proxy_set_header Host $http_host;
                      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                    }
                  }
                }
                """
            let path = directory.appendingPathComponent("nginx.conf").path
            try config.write(toFile: path, atomically: true, encoding: .utf8)
            let process = TestProcess(
                arguments: [nginx, "-c", path, "-g", "daemon off;"], environment: [:],
                logPath: directory.appendingPathComponent("nginx.log").path
            )
            try process.start()
            return process
        }

        /// One more web node on the cluster's PostgreSQL and Redis, started and healthy.
        func addWebNode(_ nodeId: String, environment: [String: String] = [:]) async throws -> (TestProcess, Int) {
            let port = try RedisTestServer.freePort()
            let process = try Cluster.node(
                "web", port: port, databaseURL: databaseURL, redisURL: redisURL, directory: directory, nodeId: nodeId, extra: environment
            )
            try await waitHealthy(port)
            return (process, port)
        }

        func waitHealthy(_ port: Int) async throws {
            try await ExamBellServerTests.waitHealthy(port: port, "a node (logs in \(directory.path))")
        }

        /// Calls the API with the admin token (or `bearer`) through the load balancer (or the
        /// admin server, with `via: adminPort`), as a client behind `forwardedFor` when given.
        @discardableResult
        func api(
            _ method: String, _ path: String, _ body: String? = nil, via port: Int? = nil, bearer: String = ClusterTests.adminToken,
            forwardedFor: String? = nil
        ) async throws -> (Int, String) {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port ?? loadBalancerPort)\(path)")!)
            request.httpMethod = method
            request.setValue("Bearer \(bearer)", forHTTPHeaderField: "Authorization")
            if let forwardedFor { request.setValue(forwardedFor, forHTTPHeaderField: "X-Forwarded-For") }
            if let body {
                request.httpBody = Data(body.utf8)
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            }
            let (data, response) = try await URLSession.shared.data(for: request)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
        }

        func tokens(_ examId: String, role: String, ids: [String]) async throws -> [String] {
            let list = ids.map { "\"\($0)\"" }.joined(separator: ",")
            let (status, body) = try await api("POST", "/api/exams/\(examId)/sessions", #"{"role":"\#(role)","ids":[\#(list)]}"#)
            #expect(status == 200)
            return try JSONDecoder().decode(SessionsBody.self, from: Data(body.utf8)).sessions.map(\.token)
        }

        func stopAll() {
            admin.stop()
            loadBalancer.stop(SIGTERM)  // nginx's fast shutdown; its workers exit with it
            web.stop()
            for (process, _) in sockets { process.stop() }
            redis.stop()
        }
    }

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
        let store = try await PostgresExamStore.open(url: cluster.databaseURL)
        #expect(try await store.exam("e1")?.endDatetime?.iso8601 == end.endDatetime)
        try await store.shutdown()
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
        let store = try await PostgresExamStore.open(url: cluster.databaseURL)
        let end = try #require(try await store.exam("e1")?.endDatetime, "the end committed before the crash")
        try await store.shutdown()
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
        let store = try await PostgresExamStore.open(url: cluster.databaseURL)
        #expect(try await store.auditLog(examId: "e1").filter { $0.action == "end" }.count == 1, "one audit row")
        try await store.shutdown()
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
        let store = try await PostgresExamStore.open(url: cluster.databaseURL)
        // The exam's end answered once the candidates' rows held it.
        let rows = try await store.candidates(examId: "d1")
        #expect(rows.map { $0.lastActiveTime?.iso8601 } == [ownEnds[0], ownEnds[1], examEnd, examEnd])
        try await eventually("final sync copied the locks into the DB", within: .seconds(30)) {
            try await store.candidates(examId: "d1").allSatisfy { $0.lockedAt != nil }
        }
        try await store.shutdown()
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

@Suite("PostgreSQL outage", .timeLimit(.minutes(4)))
struct PostgresOutageTests {
    @Test(
        "PostgreSQL dies inside the end transaction, then is down: each end answers 503 in time and changes nothing; once it is back the first end ends it; shutdown with it down completes",
        .timeLimit(.minutes(2))
    )
    func databaseDown() async throws {
        let postgres = try await PostgresTestServer.start()
        // A lock wait longer than the test's wait for the crash: the end is inside its
        // transaction, waiting on the row, when PostgreSQL dies.
        var longLockWait = DatabaseTimeouts()
        longLockWait.lockWait = .seconds(20)
        longLockWait.statement = .seconds(25)
        longLockWait.call = .seconds(30)
        let timeouts = longLockWait
        let store = try await PostgresExamStore.open(url: postgres.url, timeouts: timeouts)
        let node = try await TestNode(store: store)
        let monitor = try PostgresExecutor(url: postgres.url, logger: EndTruthTests.quiet)
        try await bounded("the outage scenario, and the node's graceful shutdown with PostgreSQL down", within: .seconds(100)) {
            try await node.node.application.test(.live) { client in
                let port = try #require(client.port)
                let ids = try await client.makeExam("e1", candidates: 2)
                let browser = TestBrowser(port: port, token: try await client.tokens("e1", role: "candidate", ids: ids)[0])
                await eventually("connected") { node.node.hub.connectionCount == 1 }

                // 1. PostgreSQL crashes while the end waits inside its transaction.
                let lock = try await PlanRowLock.hold(url: postgres.url, examId: "e1")
                let started = ContinuousClock.now
                let inFlight = Task { try await client.call(.post, "/api/exams/e1/end", json: #"{"reason":"db dies"}"#) }
                try await eventually("the end waits on the row inside its transaction") { try await PlanRowLock.waiters(monitor) > 0 }
                await postgres.crash()
                let refused = try await inFlight.value
                #expect(refused.status == .serviceUnavailable)
                #expect(try decode(ErrorBody.self, refused).error.code == "service_unavailable")
                #expect(ContinuousClock.now - started < timeouts.callBound, "answered within the stated bound")
                await lock.release()
                #expect(try await node.backends.state.plan("e1")?.status == .inProgress, "the state store never said completed")
                #expect(await browser.frames(over: .seconds(1)).isEmpty, "nobody was told")

                // 2. Still down: the first read fails; /ready names the DB.
                let ready = try await client.call(.get, "/ready", headers: [:])
                #expect(ready.status == .serviceUnavailable)
                #expect(String(buffer: ready.body).contains(#""database":"down""#))
                let down = try await client.call(.post, "/api/exams/e1/end", json: #"{"reason":"db down"}"#)
                #expect(down.status == .serviceUnavailable)

                // 3. Back: the first end that reaches the DB ends it, and the browser is told once.
                try await postgres.start()
                var answer: EndBody?
                let deadline = ContinuousClock.now + .seconds(30)
                while answer == nil, ContinuousClock.now < deadline {
                    let response = try await client.call(.post, "/api/exams/e1/end", json: #"{"reason":"db back"}"#)
                    if response.status == .ok { answer = try decode(EndBody.self, response) } else { try await Task.sleep(for: .milliseconds(200)) }
                }
                let end = try #require(answer, "an end succeeded within 30 s of PostgreSQL's restart")
                #expect(end.result == "completed")
                #expect(await browser.frames(atLeast: 1) == [ClusterTests().frame("e1", end.endDatetime)])
                #expect(await browser.frames(over: .milliseconds(500)).count == 1)
                #expect(try await client.call(.get, "/ready", headers: [:]).status == .ok)
                let log = try await node.backends.store.auditLog(examId: "e1").filter { $0.action == "end" }
                #expect(log.map(\.reason) == ["db back"], "the refused ends left nothing behind")
                browser.close()

                // 4. Down again for the node's graceful shutdown (bounded above).
                await postgres.crash()
            }
        }
        try? await monitor.shutdown()
        try await store.shutdown()
    }
}

extension ClusterTests {
    @Test(
        "Redis Sentinel under a web process and two socket processes: the primary crashes while an exam of 1,000 browsers ends; every browser is told and the keys hold the end on the promoted replica"
    )
    func failoverAcrossProcesses() async throws {
        let sentinel = try await SentinelTestCluster.start()
        defer { sentinel.stop() }
        let cluster = try await Cluster.start(socketNodes: 2, sentinel: sentinel)
        defer { cluster.stopAll() }
        let ids = (1...1_000).map { "f1-c\($0)" }
        let people = ids.map { #"{"candidateId":"\#($0)","name":"\#($0)"}"# }.joined(separator: ",")
        #expect(try await cluster.api("POST", "/api/exams", #"{"examId":"f1","title":"Failover"}"#).0 == 201)
        #expect(try await cluster.api("POST", "/api/exams/f1/candidates", #"{"candidates":[\#(people)]}"#).0 == 200)
        #expect(try await cluster.api("POST", "/api/exams/f1/proctors", #"{"proctors":[{"proctorId":"f1-p1","name":"P"}]}"#).0 == 200)
        #expect(try await cluster.api("POST", "/api/exams/f1/start").0 == 200)
        let tokens = try await cluster.tokens("f1", role: "candidate", ids: ids) + cluster.tokens("f1", role: "proctor", ids: ["f1-p1"])
        // Half on each socket process.
        let browsers = tokens.enumerated().map { TestBrowser(port: cluster.sockets[$0.offset % 2].port, token: $0.element) }
        defer { browsers.forEach { $0.close() } }
        try await eventually("1,000 candidates and the proctor connected, on both nodes", within: .seconds(90)) {
            try await cluster.api("GET", "/api/exams/f1").1.contains(#""connected":{"candidates":1000,"proctors":1}"#)
        }

        // The end and the crash at once.
        async let ending = cluster.api("POST", "/api/exams/f1/end", #"{"reason":"failover"}"#)
        sentinel.killPrimary()
        let (status, body) = try await ending
        #expect(status == 200, "\(body)")
        let end = try JSONDecoder().decode(EndBody.self, from: Data(body.utf8))
        for browser in browsers {
            #expect(await browser.frames(atLeast: 1, within: .seconds(90)) == [frame("f1", end.endDatetime)])
        }
        try await sentinel.waitForEndOnPromotedReplica("f1", candidates: ids, end: end.endDatetime)
        let store = try await PostgresExamStore.open(url: cluster.databaseURL)
        #expect(try await store.exam("f1")?.endDatetime?.iso8601 == end.endDatetime)
        try await eventually("the outbox is empty", within: .seconds(60)) { try await store.outboxBacklog() == 0 }
        try await store.shutdown()
    }
}
