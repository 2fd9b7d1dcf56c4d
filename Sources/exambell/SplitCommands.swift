import ArgumentParser

/// The error the split processes give until they have shared engines to run on: separate
/// processes only agree through PostgreSQL and Redis, never through a private SQLite file
/// and in-process memory.
private func needsSharedEngines(_ name: String) -> ValidationError {
    ValidationError(
        "exambell \(name) runs as its own process on shared engines (--database postgres://… and --redis redis://…), "
            + "which this build does not have yet. Run everything in one process with: exambell serve"
    )
}

/// `exambell web`: the web server (시행 서버) alone, default port 8080.
struct WebCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "web", abstract: "Run only the web server (JSON API).")
    @OptionGroup var options: ServerOptions
    func run() async throws { throw needsSharedEngines("web") }
}

/// `exambell socket`: a socket server node alone, default port 8081.
struct SocketCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "socket", abstract: "Run only a socket server node.")
    @OptionGroup var options: ServerOptions
    func run() async throws { throw needsSharedEngines("socket") }
}

/// `exambell admin`: the admin console (관리 서버) alone, default port 8082.
struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "admin", abstract: "Run only the admin console.")
    @OptionGroup var options: ServerOptions
    func run() async throws { throw needsSharedEngines("admin") }
}
