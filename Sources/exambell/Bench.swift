import ArgumentParser
import ExamBellCore
import Foundation
import HummingbirdWSClient
import Logging
import Synchronization

/// `exambell bench`: opens N candidate browsers (real WebSocket clients) on one exam of a
/// running deployment, ends the exam, and reports how long each browser took to hear it,
/// measured from the moment the end request was sent.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure end-to-end fan-out: N browsers of one exam, from the end request to each browser's receipt."
    )

    @OptionGroup var client: ClientOptions

    @Option(name: .shortAndLong, help: "How many candidate browsers.")
    var browsers = 1000

    @Option(help: "How many WebSocket handshakes at once.")
    var handshakeConcurrency = 100

    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        guard (1...19_000).contains(browsers) else { throw ValidationError("--browsers must be 1 to 19,000 (one process's sockets).") }
        guard (1...1000).contains(handshakeConcurrency) else { throw ValidationError("--handshake-concurrency must be 1 to 1,000.") }
    }

    func run() async throws {
        let api = try client.client()
        struct Sessions: Decodable {
            struct Session: Decodable {
                var id: String
                var socketUrl: String
            }
            var sessions: [Session]
        }
        struct Ignored: Decodable {}
        struct Ended: Decodable {
            var endDatetime: String
        }
        let examId = "bench-\(Timestamp.now().iso8601.filter(\.isNumber))-\(Int.random(in: 1000...9999))"
        progress("creating exam \(examId) with \(browsers) candidates")
        _ = try await api.call("POST", "api/exams", body: ["examId": examId, "title": "Benchmark"], as: Ignored.self)
        let ids = (0..<browsers).map { "\(examId)-c\($0)" }
        for chunk in stride(from: 0, to: ids.count, by: 5000).map({ Array(ids[$0..<min($0 + 5000, ids.count)]) }) {
            _ = try await api.call(
                "POST", "api/exams/\(examId)/candidates", body: ["candidates": chunk.map { ["candidateId": $0, "name": $0] }],
                as: Ignored.self
            )
        }
        _ = try await api.call("POST", "api/exams/\(examId)/start", as: Ignored.self)
        let sessions = try await api.call(
            "POST", "api/exams/\(examId)/sessions", body: ["role": "candidate", "ids": ids], as: Sessions.self
        ).sessions

        let board = ReceiptBoard(count: sessions.count)
        var quiet = Logger(label: "bench")
        quiet.logLevel = .critical
        let logger = quiet
        let concurrency = handshakeConcurrency
        let urls = sessions.map(\.socketUrl)
        let connectStart = ContinuousClock.now
        let connections = Task {
            await withTaskGroup(of: Void.self) { group in
                for (index, url) in urls.enumerated() {
                    if index >= concurrency { await board.waitForHandshakes(atLeast: index - concurrency + 1) }
                    group.addTask {
                        do {
                            try await WebSocketClient.connect(url: url, logger: logger) { inbound, _, _ in
                                board.connected()
                                for try await message in inbound.messages(maxSize: 1 << 16) {
                                    if case .text(let text) = message, text.contains("exam_end") {
                                        board.received(index)
                                        return
                                    }
                                }
                            }
                        } catch {
                            board.failed()
                        }
                    }
                }
            }
        }
        while board.handshakes < sessions.count {
            progress("connecting \(board.connectedCount)/\(sessions.count) (failed \(board.failedCount))", overwrite: true)
            try await Task.sleep(for: .milliseconds(200))
        }
        let connectTime = ContinuousClock.now - connectStart
        progress("connected \(board.connectedCount)/\(sessions.count) in \(connectTime)", overwrite: true)
        if !json { print() }

        let endStart = ContinuousClock.now
        board.start(at: endStart)
        let ended = try await api.call("POST", "api/exams/\(examId)/end", body: ["reason": "benchmark"], as: Ended.self)
        let responseTime = ContinuousClock.now - endStart
        let deadline = ContinuousClock.now + .seconds(30)
        while board.receivedCount < board.connectedCount, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        connections.cancel()
        let latencies = board.latencies().sorted()
        func percentile(_ p: Double) -> Double {
            guard !latencies.isEmpty else { return .nan }
            return latencies[min(latencies.count - 1, Int((p / 100 * Double(latencies.count)).rounded(.up)) - 1)]
        }
        let result: [String: any Sendable] = [
            "examId": examId, "browsers": sessions.count, "connected": board.connectedCount,
            "received": latencies.count, "missing": board.connectedCount - latencies.count,
            "connectSeconds": seconds(connectTime), "endResponseMs": seconds(responseTime) * 1000,
            "p50Ms": percentile(50), "p90Ms": percentile(90), "p99Ms": percentile(99), "maxMs": latencies.last ?? .nan,
            "endDatetime": ended.endDatetime,
        ]
        if json {
            let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("browsers \(sessions.count), connected \(board.connectedCount) in \(format(seconds(connectTime))) s")
            print("end request answered in \(format(seconds(responseTime) * 1000)) ms")
            print("exam_end received by \(latencies.count), missing \(board.connectedCount - latencies.count)")
            print("from end request to receipt: p50 \(format(percentile(50))) ms, p90 \(format(percentile(90))) ms, "
                + "p99 \(format(percentile(99))) ms, max \(format(latencies.last ?? .nan)) ms")
        }
    }

    private func progress(_ text: String, overwrite: Bool = false) {
        guard !json else { return }
        FileHandle.standardError.write(Data(((overwrite ? "\r" : "") + text + (overwrite ? "" : "\n")).utf8))
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    private func format(_ value: Double) -> String { String(format: "%.1f", value) }
}

/// Where the bench's browsers report: handshakes, and when each heard `exam_end`.
final class ReceiptBoard: Sendable {
    private struct State {
        var connected = 0
        var failed = 0
        var start: ContinuousClock.Instant?
        var receipts: [Double?]
    }

    private let state: Mutex<State>

    init(count: Int) {
        state = Mutex(State(receipts: Array(repeating: nil, count: count)))
    }

    func connected() { state.withLock { $0.connected += 1 } }
    func failed() { state.withLock { $0.failed += 1 } }
    func start(at instant: ContinuousClock.Instant) { state.withLock { $0.start = instant } }

    func received(_ index: Int) {
        let now = ContinuousClock.now
        state.withLock { state in
            guard let start = state.start else { return }
            let elapsed = now - start
            state.receipts[index] = (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18) * 1000
        }
    }

    var connectedCount: Int { state.withLock { $0.connected } }
    var failedCount: Int { state.withLock { $0.failed } }
    var handshakes: Int { state.withLock { $0.connected + $0.failed } }
    var receivedCount: Int { state.withLock { $0.receipts.lazy.compactMap { $0 }.count } }
    func latencies() -> [Double] { state.withLock { $0.receipts.compactMap { $0 } } }

    func waitForHandshakes(atLeast count: Int) async {
        while handshakes < count { try? await Task.sleep(for: .milliseconds(2)) }
    }
}
