import ArgumentParser
import ExamBellCore
import Foundation
import Synchronization

/// `bench --client-processes K`: the browsers spread over K processes of `exambell
/// bench-client`, so that more browsers than one process's 20,000 open files can be measured
/// and the client's CPU is not one process's event loops.
///
/// The parent and its children talk through files in one work directory per child, polled
/// every few milliseconds and always within a deadline (no pipe to block a thread on):
///
///     parent → job.json (URLs, source addresses, what to await)      child opens them all
///     child  → opened.json {"opened","failed"}                         parent waits for every child
///     parent → arm                                                     child stamps from now on
///     child  → armed                                                   parent fires the end requests
///     child  → result.json {"stamps","cpuSeconds"} once every browser  parent merges, in browser order
///              of it is told (or 30 s after arming)
///
/// Stamps are monotonic nanoseconds (`CLOCK_MONOTONIC`, one clock for every process of the
/// machine), so the parent subtracts its own end-request times from them.
final class ClientProcesses: Sendable {
    struct Job: Codable {
        var urls: [String]
        var sources: [String]
        var awaited: String?
        var concurrency: Int
    }

    struct Opened: Codable {
        var opened: Int
        var failed: Int
    }

    struct Result: Codable {
        var stamps: [UInt64]
        var cpuSeconds: Double
    }

    let count: Int
    let directories: [URL]
    let processes: [Process]
    let total: Int

    /// Starts `processes` children, browser `i` in child `i % processes`; each child gets its
    /// own source addresses (127.0.0.x on loopback, one per `perSource` browsers).
    init(urls: [String], processes: Int, loopback: Bool, perSource: Int, awaited: String?, concurrency: Int) throws {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("exambell-bench-\(UUID().uuidString)")
        var directories: [URL] = []
        var started: [Process] = []
        var nextSource = 2
        for child in 0..<processes {
            let mine = stride(from: child, to: urls.count, by: processes).map { urls[$0] }
            let sourceCount = loopback ? max(1, (mine.count + perSource - 1) / perSource) : 0
            let sources = (0..<sourceCount).map { "127.0.0.\(nextSource + $0)" }
            nextSource += sourceCount
            guard nextSource < 255 else { throw ValidationError("Too many browsers for the 127.0.0.x source addresses.") }
            let directory = root.appendingPathComponent("client-\(child)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let job = Job(urls: mine, sources: sources, awaited: awaited, concurrency: max(1, concurrency / processes))
            try JSONEncoder().encode(job).write(to: directory.appendingPathComponent("job.json"))
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = ["bench-client", "--directory", directory.path]
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            directories.append(directory)
            started.append(process)
        }
        self.count = processes
        self.directories = directories
        self.processes = started
        self.total = urls.count
    }

    /// Waits until every child has opened its browsers; returns (opened, failed) over all.
    func waitOpened(within limit: Duration, progress: @Sendable (Int) -> Void) async throws -> Opened {
        var all: [Opened?] = Array(repeating: nil, count: count)
        try await Self.poll(within: limit, what: "the client processes to connect") {
            for (index, directory) in directories.enumerated() where all[index] == nil {
                all[index] = Self.read(Opened.self, directory.appendingPathComponent("opened.json"))
            }
            progress(all.compactMap { $0 }.count)
            try checkAlive()
            return !all.contains { $0 == nil }
        }
        let opened = all.compactMap { $0 }
        return Opened(opened: opened.map(\.opened).reduce(0, +), failed: opened.map(\.failed).reduce(0, +))
    }

    /// Every child stamps from now on (returns once each said so).
    func arm() async throws {
        for directory in directories { FileManager.default.createFile(atPath: directory.appendingPathComponent("arm").path, contents: nil) }
        try await Self.poll(within: .seconds(30), what: "the client processes to arm") {
            try checkAlive()
            return directories.allSatisfy { FileManager.default.fileExists(atPath: $0.appendingPathComponent("armed").path) }
        }
    }

    /// Every browser's stamp in the parent's browser order (0: not told), and the children's
    /// CPU seconds from arming to their result.
    func collect() async throws -> (stamps: [UInt64], cpuSeconds: Double) {
        var results: [Result?] = Array(repeating: nil, count: count)
        try await Self.poll(within: .seconds(90), what: "the client processes' results") {
            for (index, directory) in directories.enumerated() where results[index] == nil {
                results[index] = Self.read(Result.self, directory.appendingPathComponent("result.json"))
            }
            if results.contains(where: { $0 == nil }) { try checkAlive() }
            return !results.contains { $0 == nil }
        }
        var stamps = [UInt64](repeating: 0, count: total)
        for index in 0..<total {
            let child = results[index % count]!.stamps
            let local = index / count
            if local < child.count { stamps[index] = child[local] }
        }
        return (stamps, results.compactMap { $0?.cpuSeconds }.reduce(0, +))
    }

    /// Stops every child still running and removes the work directories.
    func shutdown() {
        for process in processes where process.isRunning { process.terminate() }
        for process in processes { process.waitUntilExit() }
        if let root = directories.first?.deletingLastPathComponent() { try? FileManager.default.removeItem(at: root) }
    }

    private func checkAlive() throws {
        for (index, process) in processes.enumerated() where !process.isRunning {
            let done = FileManager.default.fileExists(atPath: directories[index].appendingPathComponent("result.json").path)
            if !done { throw ValidationError("client process \(index) exited early with status \(process.terminationStatus).") }
        }
    }

    static func read<T: Decodable>(_ type: T.Type, _ url: URL) -> T? {
        guard let data = try? Data(contentsOf: url) else { return nil }
        return try? JSONDecoder().decode(type, from: data)
    }

    /// Writes `value` (once per file) so that a reader never sees half of it: a rename is atomic.
    static func write<T: Encodable>(_ value: T, _ url: URL) throws {
        let temporary = url.appendingPathExtension("partial")
        try JSONEncoder().encode(value).write(to: temporary)
        try FileManager.default.moveItem(at: temporary, to: url)
    }

    /// Polls `done` every 5 ms until it says true; throws after `limit`.
    static func poll(within limit: Duration, what: String, _ done: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now + limit
        while try !done() {
            guard ContinuousClock.now < deadline else { throw ValidationError("Gave up waiting for \(what) after \(limit).") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

/// `exambell bench-client` (not shown in help): one browser process of `bench
/// --client-processes K` (see `ClientProcesses`).
public struct BenchClient: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bench-client",
        abstract: "One browser process of `exambell bench --client-processes K` (started by it).",
        shouldDisplay: false
    )

    @Option(help: "The work directory its parent made (job.json).")
    var directory: String

    public init() {}

    public func run() async throws {
        raiseOpenFileLimit()
        let directory = URL(fileURLWithPath: self.directory)
        guard let job = ClientProcesses.read(ClientProcesses.Job.self, directory.appendingPathComponent("job.json")) else {
            throw ValidationError("No job.json in \(self.directory).")
        }
        let targets = try job.urls.enumerated().map { try LoadClient.target($0.element, index: $0.offset, sourceAddresses: job.sources) }
        let load = LoadClient(count: targets.count, awaited: job.awaited)
        await load.open(targets, concurrency: job.concurrency) { _, _ in }
        let opened = load.opened.load(ordering: .relaxed)
        try ClientProcesses.write(
            ClientProcesses.Opened(opened: opened, failed: load.failed.load(ordering: .relaxed)),
            directory.appendingPathComponent("opened.json")
        )
        // The parent arms every child once all have connected (a large run connects for minutes).
        try await ClientProcesses.poll(within: .seconds(1800), what: "the parent to arm") {
            FileManager.default.fileExists(atPath: directory.appendingPathComponent("arm").path)
        }
        load.arm()
        let cpuBefore = Bench.processCPUSeconds()
        FileManager.default.createFile(atPath: directory.appendingPathComponent("armed").path, contents: nil)
        let deadline = ContinuousClock.now + .seconds(30)
        while load.receipts.received < opened, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let cpu = Bench.processCPUSeconds() - cpuBefore
        try ClientProcesses.write(
            ClientProcesses.Result(stamps: load.receipts.all, cpuSeconds: cpu), directory.appendingPathComponent("result.json")
        )
        await load.shutdown()
    }
}
