import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A program a test runs as a real process (an `exambell web` node, a socket node…), which
/// the test can kill (SIGKILL: a crash) or stop (SIGTERM), and start again.
public final class TestProcess: Sendable {
    public let arguments: [String]
    public let environment: [String: String]
    public let logPath: String
    private let pid = Mutex<pid_t?>(nil)

    public init(arguments: [String], environment: [String: String], logPath: String) {
        self.arguments = arguments
        self.environment = environment
        self.logPath = logPath
    }

    /// The `exambell` executable built beside the test bundle.
    public static func exambellBinary() throws -> String {
        try builtBinary("exambell")
    }

    /// An executable of the package (`exambell`, `exambell-dispatch-probe`) built beside the test bundle.
    public static func builtBinary(_ name: String) throws -> String {
        let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bundleDirectory, bundleDirectory.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw TestServerError("the \(name) executable is not built beside the tests (swift build --build-tests builds it)")
    }

    /// Starts the process with the current environment plus `environment`.
    public func start() throws {
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        let child = try RedisTestServer.spawn(arguments, stdout: logPath, environment: merged.map { "\($0.key)=\($0.value)" })
        pid.withLock { $0 = child }
        RedisTestServer.record(child)
    }

    /// Sends `signal` (by default SIGKILL: a test never waits on a graceful shutdown, which
    /// could wait on connections that only this blocked thread would close) and reaps it.
    public func stop(_ signal: Int32 = SIGKILL) {
        guard
            let child = pid.withLock({ pid in
                defer { pid = nil }
                return pid
            })
        else { return }
        kill(child, signal)
        var status: Int32 = 0
        waitpid(child, &status, 0)
        RedisTestServer.forget(child)
    }

    /// Waits (polling, without blocking a thread) for the process to exit by itself; throws
    /// when it failed or still runs after `limit`.
    public func wait(within limit: Duration = .seconds(120)) async throws {
        guard let status = await exitStatus(within: limit) else {
            throw TestServerError("\(arguments.joined(separator: " ")) still runs after \(limit)")
        }
        guard status == 0 else { throw TestServerError("\(arguments.joined(separator: " ")) failed: \(log)") }
    }

    /// The running process's id, if it runs.
    public var processId: Int32? { pid.withLock { $0 } }

    /// Sends `signal` without waiting for the process.
    public func send(_ signal: Int32) {
        if let child = pid.withLock({ $0 }) { kill(child, signal) }
    }

    /// Waits (polling, without blocking a thread) for the process to exit by itself; returns
    /// its exit status, or nil when it still runs after `limit`.
    public func exitStatus(within limit: Duration) async -> Int32? {
        guard let child = pid.withLock({ $0 }), let status = await RedisTestServer.reap(child, within: limit) else { return nil }
        pid.withLock { $0 = nil }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// What the process wrote.
    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    deinit { stop(SIGKILL) }
}
