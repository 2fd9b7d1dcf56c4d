import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A private redis-server for one test, on a free loopback port, that the test can stop and
/// start again (same port) to play an outage. The binary comes from
/// `EXAMBELL_TEST_REDIS_SERVER` or the PATH; `scripts/test` installs it. When it is missing
/// the test fails (it never skips).
public final class RedisTestServer: Sendable {
    public let port: Int
    private let binary: String
    private let pid = Mutex<pid_t?>(nil)

    /// `redis://127.0.0.1:PORT`.
    public var url: String { "redis://127.0.0.1:\(port)" }

    public static func start(_ extraArguments: [String] = []) async throws -> RedisTestServer {
        let server = RedisTestServer(binary: try findBinary(), port: try freePort(), extraArguments: extraArguments)
        try await server.start()
        return server
    }

    /// Arguments after the defaults (`--replicaof HOST PORT`, or a sentinel's config file
    /// and `--sentinel`, which must come first: see `SentinelTestCluster`).
    private let extraArguments: [String]
    private let configFile: String?

    private init(binary: String, port: Int, extraArguments: [String] = [], configFile: String? = nil) {
        self.binary = binary
        self.port = port
        self.extraArguments = extraArguments
        self.configFile = configFile
    }

    /// A sentinel on its own port, from a config file it may rewrite (sentinels do).
    static func startSentinel(config: (Int) -> String) async throws -> RedisTestServer {
        let port = try freePort()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sentinel-\(port)-\(UUID().uuidString).conf").path
        try config(port).write(toFile: path, atomically: true, encoding: .utf8)
        let server = RedisTestServer(binary: try findBinary(), port: port, configFile: path)
        try await server.start()
        return server
    }

    /// Starts the server (again) and waits until it accepts connections.
    public func start() async throws {
        let arguments =
            if let configFile {
                [binary, configFile, "--sentinel"]
            } else {
                [
                    binary, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
                    "--protected-mode", "no", "--loglevel", "warning", "--logfile", "/dev/null",
                    // A replica keeps the primary's snapshot in its folder: never the checkout.
                    "--dir", FileManager.default.temporaryDirectory.path,
                ] + extraArguments
            }
        let child = try Self.spawn(arguments)
        pid.withLock { $0 = child }
        Self.record(child)
        for _ in 0..<100 {
            if Self.accepts(port: port) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestServerError("redis-server did not start on port \(port)")
    }

    /// Stops the server at once (SIGKILL: a crash, and no signal mask of the test process
    /// can keep it alive) and reaps it.
    public func stop() {
        guard
            let child = pid.withLock({ pid in
                defer { pid = nil }
                return pid
            })
        else { return }
        kill(child, SIGKILL)
        var status: Int32 = 0
        waitpid(child, &status, 0)
        Self.forget(child)
    }

    /// Notes a started service in `EXAMBELL_TEST_RUN_DIR`, so `scripts/test` can stop it if
    /// this test process dies before it does.
    static func record(_ child: pid_t) {
        guard let directory = ProcessInfo.processInfo.environment["EXAMBELL_TEST_RUN_DIR"] else { return }
        try? String(child).write(toFile: "\(directory)/redis-\(child).pid", atomically: true, encoding: .utf8)
    }

    static func forget(_ child: pid_t) {
        guard let directory = ProcessInfo.processInfo.environment["EXAMBELL_TEST_RUN_DIR"] else { return }
        try? FileManager.default.removeItem(atPath: "\(directory)/redis-\(child).pid")
    }

    /// Runs `redis-cli --raw` against this server and returns its non-empty output lines:
    /// a plain Redis client, to check shapes independently of ExamBell's own client.
    public func cli(_ arguments: String...) async throws -> [String] {
        try await cli(arguments)
    }

    /// `cli` with its arguments as an array.
    public func cli(_ arguments: [String]) async throws -> [String] {
        let cli = URL(fileURLWithPath: binary).deletingLastPathComponent().appendingPathComponent("redis-cli").path
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("redis-cli-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let child = try Self.spawn([cli, "-p", String(port), "--raw"] + arguments, stdout: output)
        guard await Self.reap(child, within: .seconds(10)) != nil else {
            kill(child, SIGKILL)
            _ = await Self.reap(child, within: .seconds(5))
            throw TestServerError("redis-cli \(arguments.joined(separator: " ")) did not finish within 10 s")
        }
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        return text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
    }

    /// Waits for `child` to exit and reaps it, polling without holding a thread: a test that
    /// blocks in `waitpid` holds one of the few cooperative threads (two on two cores), and
    /// every other test of the process (a transaction holding a row lock, a connect with its
    /// time bound) stalls behind it. Returns the wait status, or nil if it still runs at `limit`.
    static func reap(_ child: pid_t, within limit: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + limit
        var delay = Duration.milliseconds(1)
        while true {
            var status: Int32 = 0
            if waitpid(child, &status, WNOHANG) == child {
                forget(child)
                return status
            }
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .milliseconds(20))
        }
    }

    /// Starts a program with posix_spawn (Foundation's Process cannot be waited for from
    /// async code on Linux without a run loop).
    static func spawn(_ arguments: [String], stdout: String = "/dev/null", environment: [String]? = nil) throws -> pid_t {
        var child: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        // The child must not inherit the test's sockets: a browser's socket held open by a
        // redis-server would never close.
        guard let closeFrom = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
            throw TestServerError("glibc 2.34 or later is needed (posix_spawn_file_actions_addclosefrom_np)")
        }
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        _ = unsafeBitCast(closeFrom, to: CloseFrom.self)(&actions, 3)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let envp: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup($0) } + [nil] }
        defer { envp?.forEach { free($0) } }
        let result =
            if let envp {
                posix_spawn(&child, arguments[0], &actions, nil, argv, envp)
            } else {
                posix_spawn(&child, arguments[0], &actions, nil, argv, environ)
            }
        guard result == 0 else { throw TestServerError("cannot start \(arguments[0]): error \(result)") }
        return child
    }

    deinit {
        stop()
    }

    public static func findBinary() throws -> String {
        if let path = ProcessInfo.processInfo.environment["EXAMBELL_TEST_REDIS_SERVER"], !path.isEmpty { return path }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") + ["/usr/bin", "/usr/sbin"] {
            let candidate = "\(directory)/redis-server"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw TestServerError("redis-server not found: run the tests with scripts/test, which installs it")
    }

    /// Ports for test servers come from below the kernel's ephemeral range (32768–60999 on
    /// Linux), so that no outgoing connection and no `bind(0)` of another server takes one
    /// between the moment it is handed out and the moment its server binds it; each is
    /// handed out once per test process, so parallel tests never get the same port.
    /// Each process starts at its own place in the range (spread by its pid), so that two test
    /// processes on one machine rarely walk the same ports (they had, with four places only).
    /// `EXAMBELL_TEST_PORTS=FIRST-LAST` gives a test run a range of its own (another run on the
    /// same machine then never meets it); by default 20000–31999.
    static let portRange: ClosedRange<Int> = {
        let parts = (ProcessInfo.processInfo.environment["EXAMBELL_TEST_PORTS"] ?? "").split(separator: "-").compactMap { Int($0) }
        guard parts.count == 2, 1024 <= parts[0], parts[0] < parts[1], parts[1] <= 65_535 else { return 20_000...31_999 }
        return parts[0]...parts[1]
    }()
    static let nextPort = Atomic<Int>(Int(getpid()) * 2_477 % portRange.count)

    /// A port no other test of this process was given, and free a moment ago.
    public static func freePort() throws -> Int {
        for _ in 0..<3_000 {
            let port = portRange.lowerBound + nextPort.wrappingAdd(1, ordering: .relaxed).oldValue % portRange.count
            if isFree(port) { return port }
        }
        throw TestServerError("no free loopback port in \(portRange)")
    }

    /// Whether a listening socket could bind 127.0.0.1:`port` now.
    static func isFree(_ port: Int) -> Bool {
        guard let fd = listeningSocket(port: port) else { return false }
        close(fd)
        return true
    }

    /// A socket listening on 127.0.0.1:`port` (with `SO_REUSEADDR`), or nil when the port is
    /// taken. The caller closes it.
    public static func listeningSocket(port: Int, backlog: Int32 = 1) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        guard onLoopback(port, { bind(fd, $0, $1) }) == 0, listen(fd, backlog) == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    public static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return onLoopback(port) { connect(fd, $0, $1) } == 0
    }

    /// `body` called with the address 127.0.0.1:`port` and its length.
    private static func onLoopback(_ port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
}

/// A test service that could not be run.
public struct TestServerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
