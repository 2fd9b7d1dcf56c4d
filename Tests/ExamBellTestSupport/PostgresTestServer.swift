import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A private PostgreSQL server for one test, which the test can crash (SIGKILL) and start
/// again to play a database outage. Binaries come from `EXAMBELL_TEST_PG_BIN` (set by
/// `scripts/test`); it runs as the `postgres` user, as PostgreSQL refuses root.
public final class PostgresTestServer: Sendable {
    public let port: Int
    let directory: String
    let binaries: String
    let process: TestProcess

    /// `postgres://exambell@127.0.0.1:PORT/postgres`.
    public var url: String { "postgres://exambell@127.0.0.1:\(port)/postgres" }

    public static func start() async throws -> PostgresTestServer {
        guard let binaries = ProcessInfo.processInfo.environment["EXAMBELL_TEST_PG_BIN"], !binaries.isEmpty else {
            throw TestServerError("EXAMBELL_TEST_PG_BIN is not set: run the tests with scripts/test")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("exambell-pg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(directory, 0o777)
        let initdb = TestProcess(
            arguments: try asPostgres(["\(binaries)/initdb", "-D", "\(directory)/data", "-U", "exambell", "--auth=trust", "-E", "UTF8"]),
            environment: [:], logPath: "\(directory)/initdb.log"
        )
        try initdb.start()
        try await initdb.wait()
        let port = try RedisTestServer.freePort()
        let process = TestProcess(
            arguments: try asPostgres([
                "\(binaries)/postgres", "-D", "\(directory)/data", "-p", String(port), "-k", directory,
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
            ]),
            environment: [:], logPath: "\(directory)/server.log"
        )
        let server = PostgresTestServer(port: port, directory: directory, binaries: binaries, process: process)
        try await server.start()
        return server
    }

    private init(port: Int, directory: String, binaries: String, process: TestProcess) {
        self.port = port
        self.directory = directory
        self.binaries = binaries
        self.process = process
    }

    /// Starts the server (again) and waits until it accepts connections.
    public func start() async throws {
        try process.start()
        for _ in 0..<200 {
            if RedisTestServer.accepts(port: port), process.log.contains("ready to accept connections") { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestServerError("PostgreSQL did not start: \(process.log)")
    }

    /// Crashes the server (SIGKILL to the postmaster; its backends follow it).
    public func crash() async {
        process.stop(SIGKILL)
        // Backends notice the postmaster's death; wait until nothing listens any more.
        for _ in 0..<100 where RedisTestServer.accepts(port: port) { try? await Task.sleep(for: .milliseconds(50)) }
    }

    deinit {
        process.stop(SIGKILL)
    }

    /// `arguments` run as the postgres user (setpriv execs, so the pid is the program's).
    static func asPostgres(_ arguments: [String]) throws -> [String] {
        guard getuid() == 0 else { return arguments }
        return ["/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"] + arguments
    }
}
