import ArgumentParser
import AsyncHTTPClient
import ExamBellClient
import ExamBellCore
import Foundation
import Histogram
import NIOPosix
import Synchronization

/// `exambell bench`: end-to-end fan-out of a running deployment, measured from outside.
///
/// It creates M exams of K candidates through the API, opens M×K candidate WebSockets
/// (`LoadClient`: SwiftNIO, bounded handshake concurrency, spread over 127.0.0.x source
/// addresses), ends the exams together, and reports for every browser the time from its
/// exam's end request to its receipt of `exam_end` (HdrHistogram percentiles). With
/// `--ws-url` and `--publish-url` it measures another server the same way (nginx + Nchan:
/// a plain WebSocket subscriber URL and an HTTP publish URL). With `--server-pid` it reports
/// the socket node's resident memory before and after the connections.
public struct Bench: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        abstract: "Measure end-to-end fan-out: browsers of M exams, from each end request to each browser's receipt.",
        discussion: """
            One exam of 10,000:      exambell bench --web-url URL --admin-token T --browsers 10000
            500 exams of 20 at once: exambell bench --web-url URL --admin-token T --exams 500 --browsers 20
            Idle memory per browser: exambell bench … --browsers 10000 --server-pid PID --hold 10
            Another server:          exambell bench --ws-url ws://127.0.0.1:8090/sub --publish-url http://127.0.0.1:8090/pub --browsers 10000
            """
    )

    @OptionGroup var client: ClientOptions

    @Option(name: .shortAndLong, help: "Candidate browsers per exam (or subscribers of --ws-url).")
    var browsers = 1000

    @Option(help: "Exams, each with --browsers candidates, all ended within the same moment.")
    var exams = 1

    @Option(help: "WebSocket handshakes in flight at once.")
    var handshakeConcurrency = 200

    @Option(help: "Source addresses 127.0.0.2… to spread connections over (default: one per 5,000 browsers on loopback).")
    var sourceAddresses: Int?

    @Option(help: "The socket node's process id: report its resident memory before and after the connections.")
    var serverPid: Int32?

    @Option(help: "Seconds to hold the connections idle before ending (memory settles; pings flow).")
    var hold = 0

    @Option(help: "Compare with another server: its WebSocket subscriber URL (no ExamBell API is used).")
    var wsUrl: String?

    @Option(help: "With --ws-url: the HTTP URL a POST to which publishes to every subscriber.")
    var publishUrl: String?

    @Option(help: "First run N exams of --browsers candidates through the API (created, started, ended; no browser), as a node on exam day has.")
    var history = 0

    @Option(help: "Spread the browsers over this many client processes (each under the 20,000 open-file limit).")
    var clientProcesses = 1

    @Option(
        name: .customLong("socket-url"),
        help: "A socket node's public URL (ws://HOST:PORT); repeated, the browsers are spread over the nodes round-robin.")
    var socketUrls: [String] = []

    @Flag(help: "Print the result as one JSON object.")
    var json = false

    public init() {}

    public func validate() throws {
        guard (1...16).contains(clientProcesses) else { throw ValidationError("--client-processes must be 1 to 16.") }
        guard browsers >= 1, exams >= 1, browsers * exams <= 19_000 * clientProcesses else {
            throw ValidationError(
                "--browsers × --exams must be 1 to 19,000 per client process (one process's sockets here); use --client-processes.")
        }
        for url in socketUrls {
            guard let components = URLComponents(string: url), components.scheme == "ws" || components.scheme == "wss",
                components.host != nil
            else { throw ValidationError("--socket-url must look like ws://HOST:PORT, not \(url.prefix(60)).") }
        }
        guard socketUrls.isEmpty || wsUrl == nil else { throw ValidationError("--socket-url needs the ExamBell API, not --ws-url.") }
        guard (1...2000).contains(handshakeConcurrency) else { throw ValidationError("--handshake-concurrency must be 1 to 2,000.") }
        guard (wsUrl == nil) == (publishUrl == nil) else { throw ValidationError("--ws-url and --publish-url go together.") }
        guard wsUrl == nil || exams == 1 else { throw ValidationError("--exams needs the ExamBell API, not --ws-url.") }
        guard hold >= 0 else { throw ValidationError("--hold must not be negative.") }
        guard (0...1000).contains(history), history == 0 || wsUrl == nil else {
            throw ValidationError("--history must be 0 to 1,000, and needs the ExamBell API, not --ws-url.")
        }
    }

    public func run() async throws {
        raiseOpenFileLimit()
        // Its own pool: a burst of ends goes out on many connections at once.
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 100
        let http = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: httpConfiguration)
        do {
            try await run(http: http)
            try await http.shutdown()
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    private func run(http: HTTPClient) async throws {
        let total = browsers * exams
        let plan: Plan =
            if let wsUrl, let publishUrl {
                Plan(
                    urls: Array(repeating: wsUrl, count: total), groups: [0..<total],
                    end: .publish(APIClient(baseURL: URL(string: publishUrl)!, adminToken: "", http: http), URL(string: publishUrl)!),
                    label: wsUrl
                )
            } else {
                try await prepareExams(http: http)
            }
        let rssBefore = serverPid.flatMap(residentKiB)
        let connected = try await connect(plan)
        if hold > 0 { try await Task.sleep(for: .seconds(hold)) } else { try await Task.sleep(for: .seconds(1)) }
        let rssAfter = serverPid.flatMap(residentKiB)
        let ended = try await end(plan, connected)
        try report(plan, connected, ended, rss: (rssBefore, rssAfter))
        if connected.opened < total || ended.received < connected.opened { throw ExitCode(2) }
    }

    /// The browsers once connected: how many opened, over how many source addresses, in how long.
    struct Connected {
        var fleet: Fleet
        var opened: Int
        var sources: Int
        var time: Duration
    }

    /// Opens every browser of `plan`, in this process or over client processes, with a progress bar.
    private func connect(_ plan: Plan) async throws -> Connected {
        let total = plan.urls.count
        let loopback = plan.urls.first.map { $0.contains("//127.") || $0.contains("//localhost") } ?? false
        let sources = (sourceAddresses ?? (loopback ? max(1, (total + 4999) / 5000) : 0))
        let sourceList = sources <= 1 && sourceAddresses == nil ? [] : (0..<max(sources, 1)).map { "127.0.0.\(2 + $0)" }
        let targets = try plan.urls.enumerated().map { try LoadClient.target($0.element, index: $0.offset, sourceAddresses: sourceList) }
        let awaited = wsUrl == nil ? #""type":"exam_end""# : nil
        let connectStart = ContinuousClock.now
        let fleet: Fleet
        let opened: Int
        if clientProcesses > 1 {
            let bar = ProgressBar(total: clientProcesses, enabled: !json)
            let children = try ClientProcesses(
                urls: plan.urls, processes: clientProcesses, loopback: loopback, perSource: 5000, awaited: awaited,
                concurrency: handshakeConcurrency
            )
            fleet = .processes(children)
            do {
                opened = try await children.waitOpened(within: .seconds(1800)) { done in
                    bar.show(done, note: "client processes connected")
                }.opened
            } catch {
                children.shutdown()
                throw error
            }
            bar.finish("connected \(opened) of \(total) over \(clientProcesses) client processes")
        } else {
            let load = LoadClient(count: total, awaited: awaited)
            fleet = .local(load)
            let bar = ProgressBar(total: total, enabled: !json)
            await load.open(targets, concurrency: handshakeConcurrency) { opened, failed in
                bar.show(opened + failed, note: "connecting (failed \(failed))")
            }
            opened = load.opened.load(ordering: .relaxed)
            bar.finish("connected \(opened) of \(total)")
        }
        let connectTime = ContinuousClock.now - connectStart
        if !json { FileHandle.standardError.write(Data("connect took \(Self.format(connectTime.inSeconds)) s\n".utf8)) }
        return Connected(fleet: fleet, opened: opened, sources: max(1, sourceList.count), time: connectTime)
    }

    /// What the end measured: each browser's time from its exam's end request (µs), the end
    /// requests' answer times (ns), and the client's CPU over the fan-out.
    struct Ended {
        var histogram: Histogram<UInt64>
        var withinOneSecond: Int
        var responses: [UInt64]
        var clientCPU: Double
        var received: Int { Int(histogram.totalCount) }
    }

    /// Ends every exam at once; each browser is measured from its own exam's request.
    private func end(_ plan: Plan, _ connected: Connected) async throws -> Ended {
        let fleet = connected.fleet
        try await fleet.arm()
        let cpuBefore = Self.processCPUSeconds()
        var starts = [UInt64](repeating: 0, count: plan.groups.count)
        let responses = try await withThrowingTaskGroup(of: (Int, UInt64, UInt64).self) { group in
            for index in plan.groups.indices {
                group.addTask {
                    let start = LoadClient.now()
                    try await plan.end.fire(index)
                    return (index, start, LoadClient.now())
                }
            }
            var responses: [UInt64] = []
            for try await (index, start, answered) in group {
                starts[index] = start
                responses.append(answered - start)
            }
            return responses
        }
        let (stamps, childrenCPU) = try await fleet.collect(opened: connected.opened)
        // The client's own CPU over the fan-out (this process and its children): it shares the
        // cores with the server measured.
        let clientCPU = Self.processCPUSeconds() - cpuBefore + childrenCPU
        await fleet.shutdown()

        var histogram = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)  // µs
        var withinOneSecond = 0
        for (groupIndex, range) in plan.groups.enumerated() {
            for index in range where stamps[index] != 0 {
                let micros = stamps[index] > starts[groupIndex] ? (stamps[index] - starts[groupIndex]) / 1000 : 0
                histogram.record(micros)
                if micros <= 1_000_000 { withinOneSecond += 1 }
            }
        }
        return Ended(histogram: histogram, withinOneSecond: withinOneSecond, responses: responses, clientCPU: clientCPU)
    }

    /// Prints the figures: lines for people, or one JSON object with `--json`.
    private func report(_ plan: Plan, _ connected: Connected, _ ended: Ended, rss: (before: Int?, after: Int?)) throws {
        let total = plan.urls.count
        let (opened, received, histogram, responses) = (connected.opened, ended.received, ended.histogram, ended.responses)
        func ms(_ percentile: Double) -> Double { received == 0 ? .nan : Double(histogram.valueAtPercentile(percentile)) / 1000 }
        var result: [String: any Sendable] = [
            "target": plan.label, "exams": plan.groups.count, "browsers": total, "connected": opened,
            "received": received, "missing": opened - received, "withinOneSecond": ended.withinOneSecond,
            "connectSeconds": connected.time.inSeconds, "sourceAddresses": connected.sources,
            "endResponseMsMax": Double(responses.max() ?? 0) / 1_000_000,
            "p50Ms": ms(50), "p90Ms": ms(90), "p99Ms": ms(99), "maxMs": received == 0 ? .nan : Double(histogram.max) / 1000,
            "clientProcesses": clientProcesses, "clientCpuMs": ended.clientCPU * 1000,
            "clientCpuMicrosPerMessage": received == 0 ? .nan : ended.clientCPU * 1e6 / Double(received),
        ]
        if let rssBefore = rss.before, let rssAfter = rss.after {
            result["serverRssBeforeKiB"] = rssBefore
            result["serverRssAfterKiB"] = rssAfter
            result["serverKiBPerConnection"] = opened > 0 ? Double(rssAfter - rssBefore) / Double(opened) : .nan
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print(
            "target \(plan.label): \(plan.groups.count) exam(s), \(total) browsers, \(opened) connected in \(Self.format(connected.time.inSeconds)) s"
        )
        print("end request(s) answered within \(Self.format(Double(responses.max() ?? 0) / 1_000_000)) ms")
        print("exam_end received by \(received), missing \(opened - received); within 1 s of its end request: \(ended.withinOneSecond)")
        print(
            "from end request to receipt: p50 \(Self.format(ms(50))) ms, p90 \(Self.format(ms(90))) ms, "
                + "p99 \(Self.format(ms(99))) ms, max \(Self.format(received == 0 ? .nan : Double(histogram.max) / 1000)) ms")
        if let rssBefore = rss.before, let rssAfter = rss.after {
            print(
                "server RSS \(rssBefore) KiB → \(rssAfter) KiB: \(Self.format(Double(rssAfter - rssBefore) / Double(max(opened, 1)))) KiB per connection"
            )
        }
    }

    struct Ignored: Decodable {}

    /// Creates and starts exam `examId` with `browsers` candidates; returns their ids.
    private func startExam(_ examId: String, api: APIClient) async throws -> [String] {
        let people = (0..<browsers).map { "\(examId)-c\($0)" }
        _ = try await api.call("POST", "api/exams", body: ["examId": examId, "title": "Benchmark"], as: Ignored.self)
        for chunk in stride(from: 0, to: people.count, by: 5000).map({ Array(people[$0..<min($0 + 5000, people.count)]) }) {
            _ = try await api.call(
                "POST", "api/exams/\(examId)/candidates", body: ["candidates": chunk.map { ["candidateId": $0, "name": $0] }],
                as: Ignored.self
            )
        }
        _ = try await api.call("POST", "api/exams/\(examId)/start", as: Ignored.self)
        return people
    }

    /// The node's history before the measured run: exams run and ended with no browser.
    private func makeHistory(http: HTTPClient, run: String) async throws {
        var api = try client.client(http: http)
        api.timeout = .seconds(60)
        let bar = ProgressBar(total: history, enabled: !json)
        for exam in 0..<history {
            let examId = "\(run)-history-\(exam)"
            _ = try await startExam(examId, api: api)
            try await Ender.exams(api, [examId]).fire(0)
            bar.show(exam + 1, note: "running earlier exams")
        }
        bar.finish("ran and ended \(history) earlier exam(s) of \(browsers) candidates")
    }

    /// Creates the exams with their candidates through the API and takes session tokens.
    private func prepareExams(http: HTTPClient) async throws -> Plan {
        var api = try client.client(http: http)
        api.timeout = .seconds(60)
        struct Sessions: Decodable {
            struct Session: Decodable { var socketUrl: String }
            var sessions: [Session]
        }
        let run = "bench-\(Timestamp.now().iso8601.filter(\.isNumber))-\(Int.random(in: 1000...9999))"
        if history > 0 { try await makeHistory(http: http, run: run) }
        let bar = ProgressBar(total: exams, enabled: !json)
        var urls: [String] = []
        var groups: [Range<Int>] = []
        var ids: [String] = []
        for exam in 0..<exams {
            let examId = exams == 1 ? run : "\(run)-\(exam)"
            let people = try await startExam(examId, api: api)
            var sessions: [Sessions.Session] = []
            for chunk in stride(from: 0, to: people.count, by: 5000).map({ Array(people[$0..<min($0 + 5000, people.count)]) }) {
                sessions += try await api.call(
                    "POST", "api/exams/\(examId)/sessions", body: ["role": "candidate", "ids": chunk], as: Sessions.self
                ).sessions
            }
            groups.append(urls.count..<urls.count + sessions.count)
            urls += sessions.map(\.socketUrl)
            if !socketUrls.isEmpty {
                for index in groups[groups.count - 1] { urls[index] = Self.onNode(urls[index], socketUrls[index % socketUrls.count]) }
            }
            ids.append(examId)
            bar.show(exam + 1, note: "creating exams")
        }
        bar.finish("created \(exams) exam(s) of \(browsers) candidates (\(run))")
        return Plan(urls: urls, groups: groups, end: .exams(api, ids), label: api.baseURL.absoluteString)
    }

    /// `url` (a session's socket URL) with the scheme, host and port of `node`.
    static func onNode(_ url: String, _ node: String) -> String {
        guard var components = URLComponents(string: url), let target = URLComponents(string: node) else { return url }
        components.scheme = target.scheme
        components.host = target.host
        components.port = target.port
        return components.string ?? url
    }

    /// The resident memory of a process, in KiB (Linux `/proc`).
    private func residentKiB(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "")
        }
        return nil
    }

    static func format(_ value: Double) -> String { String(format: "%.1f", value) }

    /// This process's CPU time so far (user + system), in seconds.
    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }
}

/// A one-line progress bar on standard error.
final class ProgressBar: Sendable {
    let total: Int
    let enabled: Bool

    init(total: Int, enabled: Bool) {
        self.total = total
        self.enabled = enabled
    }

    func show(_ done: Int, note: String) {
        guard enabled else { return }
        let width = 30
        let filled = total == 0 ? width : min(width, done * width / total)
        let line = "\r[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] \(done)/\(total) \(note)   "
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish(_ text: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data(("\r" + text + String(repeating: " ", count: 30) + "\n").utf8))
    }
}
