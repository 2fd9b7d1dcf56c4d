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

extension ClusterTests {
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
}
