import ExamBellCore
import ExamBellSQL
import ExamBellServer
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ExamBellTestSupport
import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

/// ExamBell the way the seed draws it: PostgreSQL, Redis, a web node and two socket nodes as
/// separate `exambell` processes, with real WebSocket browsers.
@Suite("Separate processes on PostgreSQL and Redis")
struct ClusterTests {
    static let adminToken = "cluster-admin-token"
    static let secret = "cluster-session-secret-0123456789"

    /// The processes of one test's cluster.
    struct Cluster {
        let redis: RedisTestServer
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

        static func start(
            socketNodes: Int, webEnvironment: [String: String] = [:], socketEnvironment: [String: String] = [:]
        ) async throws -> Cluster {
            let redis = try await RedisTestServer.start()
            let server = try PostgresTestDatabase.serverURL()
            let maintenance = try await PostgresExamStore.openUnmigrated(url: server)
            let name = PostgresTestDatabase.freshName()
            try await maintenance.execute("CREATE DATABASE \(name)")
            try await maintenance.shutdown()
            let databaseURL = PostgresTestDatabase.url(server, database: name)
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("exambell-cluster-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let webPort = try RedisTestServer.freePort()
            let web = try node(
                "web", port: webPort, databaseURL: databaseURL, redis: redis, directory: directory, extra: webEnvironment
            )
            var sockets: [(TestProcess, Int)] = []
            for index in 1...socketNodes {
                let port = try RedisTestServer.freePort()
                sockets.append(
                    (
                        try node(
                            "socket", port: port, databaseURL: databaseURL, redis: redis, directory: directory, nodeId: "s\(index)",
                            extra: socketEnvironment
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
                redis: redis, databaseURL: databaseURL, web: web, webPort: webPort, sockets: sockets, directory: directory,
                loadBalancer: loadBalancer, loadBalancerPort: loadBalancerPort, admin: admin, adminPort: adminPort
            )
            for port in [webPort, loadBalancerPort, adminPort] + sockets.map(\.1) { try await cluster.waitHealthy(port) }
            return cluster
        }

        static func node(
            _ role: String, port: Int, databaseURL: String, redis: RedisTestServer, directory: URL, nodeId: String = "web",
            extra: [String: String] = [:]
        ) throws -> TestProcess {
            let process = TestProcess(
                arguments: [try TestProcess.exambellBinary(), role],
                environment: [
                    "EXAMBELL_PORT": String(port), "EXAMBELL_DATABASE_URL": databaseURL, "EXAMBELL_REDIS_URL": redis.url,
                    "EXAMBELL_ADMIN_TOKEN": adminToken, "EXAMBELL_SESSION_SECRET": secret, "EXAMBELL_NODE_ID": nodeId,
                    "EXAMBELL_SYNC_INTERVAL": "1", "EXAMBELL_LOG_LEVEL": "warning",
                    "EXAMBELL_PUBLIC_SOCKET_URL": "ws://127.0.0.1:\(port)/ws",
                ].merging(extra) { $1 },
                logPath: directory.appendingPathComponent("\(role)-\(nodeId).log").path
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
                      proxy_read_timeout 1h;
                    }
                    location / { proxy_pass http://web; proxy_http_version 1.1; proxy_set_header Connection ""; }
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

        func waitHealthy(_ port: Int) async throws {
            for _ in 0..<200 {
                if let (_, response) = try? await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/health")!),
                    (response as? HTTPURLResponse)?.statusCode == 200
                {
                    return
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw TestServerError("node on port \(port) never became healthy; logs in \(directory.path)")
        }

        /// Calls the web node's API with the admin token.
        /// Calls the API through the load balancer (or the admin server, with `via: adminPort`).
        @discardableResult
        func api(_ method: String, _ path: String, _ body: String? = nil, via port: Int? = nil) async throws -> (Int, String) {
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port ?? loadBalancerPort)\(path)")!)
            request.httpMethod = method
            request.setValue("Bearer \(ClusterTests.adminToken)", forHTTPHeaderField: "Authorization")
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
        #expect(try cluster.redis.cli("GET", "exam_plan:e1") == [#"{"status":"completed","end_datetime":"\#(end.endDatetime)"}"#])

        // Node 2 comes back; its browsers reconnect and are told.
        try cluster.sockets[1].process.start()
        try await cluster.waitHealthy(node2)
        let reconnected = [TestBrowser(port: node2, token: tokens[1]), TestBrowser(port: node2, token: tokens[2])]
        for browser in reconnected {
            #expect(await browser.frames(atLeast: 1) == [frame("e1", end.endDatetime)])
        }

        // A deleted key comes back from the DB (sync every second here; 30 s by default).
        _ = try cluster.redis.cli("DEL", "exam_plan:e1")
        try await eventually("exam_plan:e1 rewritten by final sync", within: .seconds(60)) {
            try cluster.redis.cli("GET", "exam_plan:e1") == [#"{"status":"completed","end_datetime":"\#(end.endDatetime)"}"#]
        }
        (onNode1 + onNode2 + reconnected + [throughLoadBalancer]).forEach { $0.close() }
    }

    @Test("a web node killed after its commit and before its publish: another web node's outbox relay publishes")
    func webNodeDiesBeforePublish() async throws {
        let cluster = try await Cluster.start(socketNodes: 1, webEnvironment: ["EXAMBELL_TEST_FAULT": "after-commit"])
        defer { cluster.stopAll() }
        let healthyPort = try RedisTestServer.freePort()
        let healthy = try Cluster.node(
            "web", port: healthyPort, databaseURL: cluster.databaseURL, redis: cluster.redis, directory: cluster.directory,
            nodeId: "web-2"
        )
        defer { healthy.stop() }
        try await cluster.waitHealthy(healthyPort)
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

@Suite("PostgreSQL outage")
struct PostgresOutageTests {
    @Test("PostgreSQL down: an end answers 503 with a clear error and changes nothing; it works once PostgreSQL is back")
    func databaseDown() async throws {
        let postgres = try await PostgresTestServer.start()
        let store = try await PostgresExamStore.open(url: postgres.url)
        let node = try await TestNode(store: store)
        try await node.node.application.test(.router) { client in
            _ = try await client.makeExam("e1", candidates: 2)
            postgres.crash()
            let ready = try await client.call(.get, "/ready", headers: [:])
            #expect(ready.status == .serviceUnavailable)
            #expect(String(buffer: ready.body).contains(#""database":"down""#))
            let refused = try await client.call(.post, "/api/exams/e1/end", json: #"{"reason":"db down"}"#)
            #expect(refused.status == .serviceUnavailable)
            let error = try decode(ErrorBody.self, refused)
            #expect(error.error.code == "service_unavailable")
            #expect(try await node.backends.state.plan("e1")?.status == .inProgress, "the state store was put back")
            try await postgres.start()
            var answer: EndBody?
            for _ in 0..<100 {
                let response = try await client.call(.post, "/api/exams/e1/end", json: #"{"reason":"db back"}"#)
                if response.status == .ok {
                    answer = try decode(EndBody.self, response)
                    break
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(answer?.result == "completed", "the first end that reaches the DB ends it")
            #expect(try await client.call(.get, "/ready", headers: [:]).status == .ok)
            let log = try await node.backends.store.auditLog(planId: "e1").filter { $0.action == "end" }
            #expect(log.map(\.reason) == ["db back"], "the refused end left nothing behind")
        }
        try await store.shutdown()
    }
}
