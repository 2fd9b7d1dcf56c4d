import ExamBellCore
import Foundation
import Metrics
import Prometheus
import Synchronization

/// One node's Prometheus metrics, served at `/metrics`: instruments are swift-metrics types
/// made by a `PrometheusMetricsFactory` over this node's own registry (no global bootstrap,
/// so several nodes can live in one test process).
///
/// - `exambell_connections{role}`: browsers on this socket node
/// - `exambell_socket_admissions_total{credential}`: sockets admitted with a `ticket` (the
///   pages') or a session `token` in the URL
/// - `exambell_broadcasts_total`, `exambell_browsers_told_total`: `exam_end` broadcasts and
///   the browsers each reached
/// - `exambell_end_to_broadcast_seconds`: from the end request (same process) or the queue
///   entry's publish time (Redis stream id) to the frames being handed to every browser
/// - `exambell_end_request_seconds`: the end request on the web node
/// - `exambell_queue_lag_seconds`: publish → read by this socket node, last seen
/// - `exambell_outbox_backlog`: outbox rows waiting to be published
/// - `exambell_backend_errors_total{backend}`: failed DB and Redis calls of this node's stores
/// - `exambell_end_to_locked_seconds` (socket node), `exambell_end_to_saved_seconds` (web
///   node): from a candidate's end time to its page reporting the lock, and to its final
///   save reaching the server (the end time has whole seconds, so each is up to 1 s long)
public final class NodeMetrics: Sendable {
    package let registry = PrometheusCollectorRegistry()
    package let broadcasts: Metrics.Counter
    package let browsersTold: Metrics.Counter
    package let endToBroadcast: Metrics.Timer
    package let endRequest: Metrics.Timer
    package let endToLocked: Metrics.Timer
    package let endToSaved: Metrics.Timer
    package let queueLag: Metrics.Gauge
    package let outboxBacklog: Metrics.Gauge
    package let candidates: Metrics.Gauge
    package let proctors: Metrics.Gauge
    /// Rooms a socket node holds (exams with browsers here, ended ones still remembered).
    package let rooms: Metrics.Gauge
    /// Sockets admitted with a ticket, and with a session token in the URL.
    private let admittedByTicket: Metrics.Counter
    private let admittedByToken: Metrics.Counter
    /// What this node's stores count (they were opened with it).
    package let failures: BackendFailures
    private let backendErrors: [BackendFailures.Backend: Metrics.Counter]
    private let reported = Mutex<[BackendFailures.Backend: Int]>([:])
    /// When each end request of this process started, so a broadcast in the same process
    /// can measure from it.
    private let endStarts = Mutex<[String: ContinuousClock.Instant]>([:])

    public init(failures: BackendFailures = BackendFailures()) {
        self.failures = failures
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
            .seconds(30), .seconds(60), .seconds(300),
        ]
        broadcasts = Metrics.Counter(label: "exambell_broadcasts_total", factory: factory)
        browsersTold = Metrics.Counter(label: "exambell_browsers_told_total", factory: factory)
        endToBroadcast = Metrics.Timer(label: "exambell_end_to_broadcast_seconds", factory: factory)
        endRequest = Metrics.Timer(label: "exambell_end_request_seconds", factory: factory)
        endToLocked = Metrics.Timer(label: "exambell_end_to_locked_seconds", factory: factory)
        endToSaved = Metrics.Timer(label: "exambell_end_to_saved_seconds", factory: factory)
        queueLag = Metrics.Gauge(label: "exambell_queue_lag_seconds", factory: factory)
        outboxBacklog = Metrics.Gauge(label: "exambell_outbox_backlog", factory: factory)
        candidates = Metrics.Gauge(label: "exambell_connections", dimensions: [("role", "candidate")], factory: factory)
        proctors = Metrics.Gauge(label: "exambell_connections", dimensions: [("role", "proctor")], factory: factory)
        rooms = Metrics.Gauge(label: "exambell_socket_rooms", factory: factory)
        admittedByTicket = Metrics.Counter(label: "exambell_socket_admissions_total", dimensions: [("credential", "ticket")], factory: factory)
        admittedByToken = Metrics.Counter(label: "exambell_socket_admissions_total", dimensions: [("credential", "token")], factory: factory)
        var errors: [BackendFailures.Backend: Metrics.Counter] = [:]
        for backend in BackendFailures.Backend.allCases {
            errors[backend] = Metrics.Counter(label: "exambell_backend_errors_total", dimensions: [("backend", backend.rawValue)], factory: factory)
        }
        backendErrors = errors
    }

    /// A browser's socket admitted (socket node).
    package func admitted(byTicket: Bool) {
        (byTicket ? admittedByTicket : admittedByToken).increment()
    }

    /// An end request started (web node).
    package func endStarted(_ examId: String) -> ContinuousClock.Instant {
        let now = ContinuousClock.now
        endStarts.withLock { starts in
            starts[examId] = now
            // Forget ends never broadcast in this process (split nodes) after a while.
            if starts.count > 10_000 { starts = starts.filter { now - $0.value < .seconds(600) } }
        }
        return now
    }

    /// A broadcast of `examId`'s end handed its frame to `told` browsers; `entryId` is its
    /// queue entry (a Redis stream id carries the publish time in milliseconds).
    package func broadcastDone(examId: String, told: Int, entryId: String?) {
        broadcasts.increment()
        browsersTold.increment(by: told)
        if let started = endStarts.withLock({ $0.removeValue(forKey: examId) }) {
            endToBroadcast.recordInterval(since: started)
        } else if let published = Self.publishTime(entryId) {
            endToBroadcast.recordSeconds(max(0, Date().timeIntervalSince1970 - published))
        }
    }

    /// A candidate's page reported its lock; `end` is the end it was told.
    package func locked(after end: Timestamp) {
        endToLocked.recordSeconds(max(0, Date().timeIntervalSince1970 - Double(end.secondsSince1970)))
    }

    /// A candidate's final save arrived; `end` is its end time.
    package func saved(after end: Timestamp) {
        endToSaved.recordSeconds(max(0, Date().timeIntervalSince1970 - Double(end.secondsSince1970)))
    }

    /// A queue entry was read by this node.
    package func entryRead(_ entryId: String) {
        if let published = Self.publishTime(entryId) {
            queueLag.record(max(0, Date().timeIntervalSince1970 - published))
        }
    }

    /// What a socket node holds at a scrape.
    package struct Browsers: Sendable {
        package var candidates: Int
        package var proctors: Int
        package var rooms: Int

        package init(candidates: Int, proctors: Int, rooms: Int) {
            self.candidates = candidates
            self.proctors = proctors
            self.rooms = rooms
        }
    }

    /// The Prometheus text exposition, after refreshing what is read at scrape time.
    package func exposition(browsers: Browsers?, outboxBacklog backlog: Int?) -> String {
        if let browsers {
            candidates.record(browsers.candidates)
            proctors.record(browsers.proctors)
            rooms.record(browsers.rooms)
        }
        if let backlog { outboxBacklog.record(backlog) }
        reported.withLock { reported in
            for backend in BackendFailures.Backend.allCases {
                let now = failures.count(backend)
                let delta = now - reported[backend, default: 0]
                if delta > 0 { backendErrors[backend]?.increment(by: delta) }
                reported[backend] = now
            }
        }
        return registry.emitToString()
    }

    /// A Redis stream id `<milliseconds>-<sequence>` as seconds since 1970; nil for others
    /// (the memory engine numbers its entries).
    static package func publishTime(_ entryId: String?) -> Double? {
        guard let text = entryId?.split(separator: "-").first, let ms = Double(text), ms > 1_000_000_000_000 else { return nil }
        return ms / 1000
    }
}

extension Metrics.Timer {
    package func recordInterval(since start: ContinuousClock.Instant) {
        recordNanoseconds((ContinuousClock.now - start).nanoseconds)
    }
}
