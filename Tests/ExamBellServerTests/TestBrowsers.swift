import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellMemory
import ExamBellRedis
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
import HummingbirdWSClient
import Logging
import NIOCore
import NIOWebSocket
import RedisClient
import Synchronization
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A browser stand-in: a real WebSocket client that records every text frame it receives.
final class TestBrowser: Sendable {
    /// The frames received so far; the live roster a proctor gets every tick is kept apart.
    final class FrameLog: Sendable {
        let frames = Mutex<(messages: [String], rosters: [String])>(([], []))
        func append(_ frame: String) {
            frames.withLock {
                if frame.hasPrefix(#"{"type":"roster""#) || frame.contains(#""type":"roster""#) {
                    $0.rosters.append(frame)
                } else {
                    $0.messages.append(frame)
                }
            }
        }
        var all: [String] { frames.withLock { $0.messages } }
        var rosters: [String] { frames.withLock { $0.rosters } }

        /// Records every text frame of a connection; answers `exam_end` with an ack like the
        /// candidate page does, when asked to, and sends what `reply` makes of each frame.
        func read(
            _ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter, ackExamEnd: Bool,
            reply: (@Sendable (String) -> [String])? = nil
        ) async throws {
            for try await message in inbound.messages(maxSize: 1 << 16) {
                guard case .text(let text) = message else { continue }
                append(text)
                for answer in reply?(text) ?? [] { try await outbound.write(.text(answer)) }
                if ackExamEnd, text.contains(#""type":"exam_end""#),
                    let examId = text.split(separator: "\"").dropFirst().drop(while: { $0 != "examId" }).dropFirst(2).first
                {
                    try await outbound.write(.text(#"{"type":"ack","examId":"\#(examId)"}"#))
                }
            }
        }

        /// Waits until `count` messages arrived (or `limit` passed); returns what arrived.
        func messages(atLeast count: Int, within limit: Duration) async -> [String] {
            let deadline = ContinuousClock.now + limit
            while ContinuousClock.now < deadline, all.count < count {
                try? await Task.sleep(for: .milliseconds(20))
            }
            return all
        }
    }

    let received = FrameLog()
    private let task: Task<Void, any Error>

    /// Connects with `token`; when `ackExamEnd`, answers `exam_end` with an ack like the page
    /// does; `reply` says what else to send back for a frame.
    init(port: Int, token: String, ackExamEnd: Bool = false, reply: (@Sendable (String) -> [String])? = nil) {
        let received = self.received
        task = Task {
            var logger = Logger(label: "browser")
            logger.logLevel = ProcessInfo.processInfo.environment["TEST_LOG"] == nil ? .critical : .trace
            // A proctor's roster of hundreds of candidates is larger than the client's default 16 KiB frame.
            try await WebSocketClient.connect(
                url: "ws://127.0.0.1:\(port)/ws?token=\(token)", configuration: .init(maxFrameSize: 1 << 20), logger: logger
            ) {
                inbound, outbound, _ in
                try await received.read(inbound, outbound, ackExamEnd: ackExamEnd, reply: reply)
            }
        }
    }

    /// Waits until `count` frames arrived (or the connection ended); returns what arrived.
    func frames(atLeast count: Int, within limit: Duration = .seconds(15)) async -> [String] {
        await received.messages(atLeast: count, within: limit)
    }

    /// Every frame that arrived by the end of `window` from now: counts what a browser was
    /// sent over a stretch of time, not only its first frame.
    func frames(over window: Duration) async -> [String] {
        try? await Task.sleep(for: window)
        return received.all
    }

    /// The connection's outcome: nil while open, else how it ended; answers within `limit`
    /// whatever the connection does.
    ///
    /// Not a task group: a group waits for all its children, and a child awaiting the
    /// connection's task cannot be cancelled. A connection to a SIGKILLed node was seen to stay
    /// in CLOSE-WAIT for good (the test's WebSocket client allows half-closure and never closes
    /// after the server's FIN), which held a whole test run until its 20-minute kill.
    func result(within limit: Duration = .seconds(10)) async -> Result<Void, any Error>? {
        let answer = ResumeOnce<Result<Void, any Error>?>()
        let task = self.task
        return await withCheckedContinuation { continuation in
            answer.set(continuation)
            Task { answer.resume(await task.result) }
            Task {
                try? await Task.sleep(for: limit)
                answer.resume(nil)
            }
        }
    }

    func close() { task.cancel() }
}

/// A browser stand-in that reconnects like the pages' `socket.js`: after a close with 1012
/// (a node shutting down) it moves to the next URL (as a load balancer would) within a
/// random second; after any other loss it backs off exponentially with jitter.
final class ReconnectingBrowser: Sendable {
    /// What happened to the connections.
    final class Events: Sendable {
        /// The close codes the server sent, in order (nil: the connection ended without one).
        let closeCodes = Mutex<[WebSocketErrorCode?]>([])
        /// When each connection opened.
        let opened = Mutex<[ContinuousClock.Instant]>([])
        /// The port of the node that holds the open connection (nil between connections).
        let livePort = Mutex<Int?>(nil)
        /// Each try's opening and ending, with when: for a failing expectation's message.
        let history = Mutex<[(ContinuousClock.Instant, String)]>([])
        /// The socket nodes to try, in turn (a load balancer's backends).
        let ports: Mutex<[Int]>

        init(ports: [Int]) { self.ports = Mutex(ports) }
    }

    let received = TestBrowser.FrameLog()
    let events: Events
    private let task: Task<Void, Never>

    init(ports: [Int], token: String, ackExamEnd: Bool = true) {
        events = Events(ports: ports)
        let received = self.received
        let events = self.events
        task = Task {
            var logger = Logger(label: "browser")
            logger.logLevel = .critical
            var index = 0
            var attempt = 0
            while !Task.isCancelled {
                var delay: Duration
                // As the page does, a connection that opened starts the backoff over.
                let openedBefore = events.opened.withLock { $0.count }
                do {
                    let ports = events.ports.withLock { $0 }
                    let port = ports[index % ports.count]
                    // Pings, as the browser's TCP stack would notice, find a node that died: the
                    // test client allows half-closure and otherwise keeps a connection whose
                    // server was SIGKILLed in CLOSE-WAIT for good, never reconnecting.
                    let close = try await WebSocketClient.connect(
                        url: "ws://127.0.0.1:\(port)/ws?token=\(token)",
                        configuration: .init(autoPing: .enabled(timePeriod: .seconds(10))), logger: logger
                    ) { inbound, outbound, _ in
                        events.opened.withLock { $0.append(.now) }
                        events.livePort.withLock { $0 = port }
                        events.history.withLock { $0.append((.now, "opened on \(port)")) }
                        try await received.read(inbound, outbound, ackExamEnd: ackExamEnd)
                    }
                    events.closeCodes.withLock { $0.append(close?.closeCode) }
                    events.livePort.withLock { $0 = nil }
                    events.history.withLock { $0.append((.now, close.map { "closed with \($0.closeCode)" } ?? "ended without a close frame")) }
                    if events.opened.withLock({ $0.count }) > openedBefore { attempt = 0 }
                    if close?.closeCode == SocketCloseCodes.restart {
                        index += 1
                        attempt = 1
                        delay = .milliseconds(Int.random(in: 0..<1000))
                    } else {
                        delay = ReconnectingBrowser.backoff(attempt)
                        attempt += 1
                    }
                } catch {
                    events.livePort.withLock { $0 = nil }
                    events.history.withLock { $0.append((.now, "failed: \(error)")) }
                    // Refused (or cut): the next try goes to the next node, as a load balancer's would.
                    if events.opened.withLock({ $0.count }) > openedBefore { attempt = 0 }
                    index += 1
                    delay = ReconnectingBrowser.backoff(attempt)
                    attempt += 1
                }
                try? await Task.sleep(for: delay)
            }
        }
    }

    /// 0.5 s, 1 s, 2 s … up to 30 s, each spread by ±50 %, as in `socket.js`.
    static func backoff(_ attempt: Int) -> Duration {
        let base = min(30_000.0, 500.0 * pow(2.0, Double(min(attempt, 10))))
        return .milliseconds(Int(base * Double.random(in: 0.5..<1.5)))
    }

    var connections: Int { events.opened.withLock { $0.count } }

    /// Whether the first connection that opened ended in an error (a reset) rather than a close
    /// frame or the peer's FIN; nil while it is open. A reset drops what the browser had not
    /// read yet.
    var firstConnectionFailed: Bool? {
        let history = events.history.withLock { $0 }.map(\.1)
        guard let opened = history.firstIndex(where: { $0.hasPrefix("opened") }), opened + 1 < history.count else { return nil }
        return history[opened + 1].hasPrefix("failed")
    }

    /// The port of the node that holds this browser now (nil while it is not connected).
    var livePort: Int? { events.livePort.withLock { $0 } }

    /// What happened to each try, in ms relative to `origin`: for a failing expectation's message.
    func history(since origin: ContinuousClock.Instant) -> String {
        events.history.withLock { $0 }.map { "\(Int(($0.0 - origin) / .milliseconds(1))) ms \($0.1)" }.joined(separator: ", ")
    }

    /// The nodes to try from now on, as a load balancer whose health check dropped a dead node
    /// and added its replacement.
    func setPorts(_ ports: [Int]) { events.ports.withLock { $0 = ports } }
    var closeCodes: [WebSocketErrorCode?] { events.closeCodes.withLock { $0 } }

    func frames(atLeast count: Int, within limit: Duration = .seconds(30)) async -> [String] {
        await received.messages(atLeast: count, within: limit)
    }

    func close() { task.cancel() }
}

enum SocketCloseCodes {
    static let restart = WebSocketErrorCode.unknown(1012)
}
