import ArgumentParser
import ExamBellServer

/// Split processes only agree through shared engines, never through a private SQLite file and
/// in-process memory: refuse to start without PostgreSQL and Redis.
func requireSharedEngines(_ options: ServerOptions, _ name: String) throws {
    let database = options.resolvedDatabase ?? ""
    guard database.hasPrefix("postgres://") || database.hasPrefix("postgresql://"), options.resolvedRedis != nil else {
        throw ValidationError(
            "exambell \(name) runs as its own process on shared engines: give it --database postgres://… and --redis redis://… "
                + "(EXAMBELL_DATABASE_URL, EXAMBELL_REDIS_URL). To run everything in one process: exambell serve"
        )
    }
}

/// `exambell web`: the web server (시행 서버) alone, default port 8080. Stateless: run any
/// number of them behind a load balancer.
struct WebCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "web", abstract: "Run only the web server (JSON API).")
    @OptionGroup var options: ServerOptions

    func run() async throws {
        try requireSharedEngines(options, "web")
        try await NodeRunner.run(options: options, roles: .web, defaultPort: 8080, demo: false)
    }
}

/// `exambell socket`: a socket server node alone, default port 8081; each node reads the
/// queue through its own consumer group, named by `--node-id`.
struct SocketCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "socket", abstract: "Run only a socket server node.")
    @OptionGroup var options: ServerOptions

    func run() async throws {
        try requireSharedEngines(options, "socket")
        try await NodeRunner.run(options: options, roles: .socket, defaultPort: 8081, demo: false)
    }
}

/// `exambell admin`: the admin console (관리 서버) alone, default port 8082. It reaches the
/// web server only over HTTP (`--web-url`), never the DB or Redis.
struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "admin", abstract: "Run only the admin console.")
    @OptionGroup var options: ServerOptions

    func run() async throws {
        guard options.resolvedWebURL != nil else {
            throw ValidationError("exambell admin needs --web-url (EXAMBELL_WEB_URL): where it reaches the web server's API.")
        }
        try await NodeRunner.run(options: options, roles: .admin, defaultPort: 8082, demo: false)
    }
}
