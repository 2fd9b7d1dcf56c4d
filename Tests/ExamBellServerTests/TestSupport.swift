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

/// A node on SQLite and the memory engine, with fast background timings, for tests.
struct TestNode {
    static let adminToken = "test-admin-token"
    static let secret = "test-session-secret-0123456789abcdef"
    static let admin: HTTPFields = [.authorization: "Bearer \(adminToken)", .contentType: "application/json"]

    let node: ExamBellNode
    let backends: ExamBellBackends
    /// A consumer group opened before anything happens, to count what was published.
    let observerGroup = "test-observer"

    /// A node on SQLite at `databasePath`, and on Redis at `redisURL` or else the memory engine.
    init(
        databasePath: String = ":memory:", store given: (any ExamStore)? = nil, redisURL: String? = nil,
        sessionSecret: String = TestNode.secret, syncAfterEnd: Duration? = .milliseconds(100),
        syncInterval: Duration = .seconds(1), syncWindow: Duration = .seconds(600), maxConnections: Int = 19_000, answerGraceSeconds: Int = 10,
        nodeId: String = "socket-1", schedulerInterval: Duration = .milliseconds(200), pingInterval: Duration = .seconds(30),
        outboxLease: Duration = .seconds(5), faults: FaultPoints = .none,
        configure: (inout ExamBellConfiguration) -> Void = { _ in }
    ) async throws {
        var logger = Logger(label: "test")
        logger.logLevel = ProcessInfo.processInfo.environment["TEST_LOG"] == nil ? .critical : .trace
        // The node's stores count their failures where its `/metrics` reads them.
        let failures = BackendFailures()
        let store: any ExamStore
        if let given {
            store = given
        } else {
            store = try await SQLiteExamStore.open(path: databasePath, failures: failures, logger: logger)
        }
        if let redisURL {
            let client = RedisClient(configuration: try RedisConfiguration(url: redisURL), logger: logger)
            backends = ExamBellBackends(
                store: store, state: RedisStateStore(client: client, failures: failures),
                queue: RedisStreamsQueue(client: client, failures: failures),
                events: RedisStreamsQueue(client: client, stream: QueueStream.events, failures: failures), failures: failures
            )
        } else {
            backends = ExamBellBackends(
                store: store, state: MemoryStateStore(), queue: MemoryQueue(), events: MemoryQueue(stream: QueueStream.events), failures: failures)
        }
        try await backends.queue.createGroup(observerGroup)
        var configuration = ExamBellConfiguration(
            adminToken: Self.adminToken, sessionSecret: sessionSecret, publicWebURL: "http://127.0.0.1:0",
            publicSocketURL: "ws://127.0.0.1:0/ws"
        )
        configuration.port = 0
        configuration.outboxInterval = .milliseconds(200)
        configuration.outboxLease = outboxLease
        configuration.presenceInterval = .milliseconds(100)
        configuration.syncInterval = syncInterval
        configuration.syncWindow = syncWindow
        configuration.maxConnections = maxConnections
        configuration.syncAfterEnd = syncAfterEnd
        configuration.answerGraceSeconds = answerGraceSeconds
        configuration.nodeId = nodeId
        configuration.schedulerInterval = schedulerInterval
        configuration.pingInterval = pingInterval
        configuration.faults = faults
        // HummingbirdTesting's live client opens its connection when the test starts and
        // never re-makes it: the first request may come later than a browser's would.
        configuration.connectionLimits.headerTimeout = .seconds(600)
        configure(&configuration)
        node = try await buildApplication(configuration: configuration, backends: backends, logger: logger)
    }

    /// The two ways ExamBell runs, as test arguments.
    static let engines = ["SQLite + memory engine", "PostgreSQL + Redis"]

    /// Runs `body` on a node of the named engines (one of `engines`): SQLite and the memory
    /// engine, or a fresh PostgreSQL database and a Redis server of its own, stopped afterwards.
    static func on(
        _ engines: String, answerGraceSeconds: Int = 10, configure: (inout ExamBellConfiguration) -> Void = { _ in },
        _ body: (TestNode) async throws -> Void
    ) async throws {
        let redis = engines.contains("Redis") ? try await RedisTestServer.start() : nil
        defer { redis?.stop() }
        if let redis {
            try await PostgresTestDatabase.withFreshStore { store in
                try await body(
                    try await TestNode(store: store, redisURL: redis.url, answerGraceSeconds: answerGraceSeconds, configure: configure))
            }
        } else {
            try await body(try await TestNode(answerGraceSeconds: answerGraceSeconds, configure: configure))
        }
    }

    /// Every queue entry published since the node was made.
    func publishedEntries() async throws -> [QueueEntry] {
        try await backends.queue.read(group: observerGroup, limit: 1000, timeout: .milliseconds(10))
    }
}

/// JSON helpers over the test client.
extension TestClientProtocol {
    @discardableResult
    func call(
        _ method: HTTPRequest.Method, _ uri: String, json: String? = nil, headers: HTTPFields = TestNode.admin
    ) async throws -> TestResponse {
        try await execute(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
    }

    /// Creates an exam with candidates c1…cN and proctors, optionally started.
    func makeExam(_ examId: String, candidates: Int, proctors: Int = 0, start: Bool = true) async throws -> [String] {
        let created = try await call(.post, "/api/exams", json: #"{"examId":"\#(examId)","title":"Test \#(examId)"}"#)
        #expect(created.status == .created)
        let ids = try await makeExamPeople(examId, candidates: candidates, proctors: proctors)
        if start {
            #expect(try await call(.post, "/api/exams/\(examId)/start").status == .ok)
        }
        return ids
    }

    /// Registers candidates c1…cN and proctors p1…pM to an exam made already.
    func makeExamPeople(_ examId: String, candidates: Int, proctors: Int = 1) async throws -> [String] {
        let ids = (1...max(candidates, 1)).map { "\(examId)-c\($0)" }.prefix(candidates)
        if !ids.isEmpty {
            let people = ids.map { #"{"candidateId":"\#($0)","name":"\#($0)"}"# }.joined(separator: ",")
            let response = try await call(.post, "/api/exams/\(examId)/candidates", json: #"{"candidates":[\#(people)]}"#)
            #expect(response.status == .ok)
        }
        if proctors > 0 {
            let people = (1...proctors).map { #"{"proctorId":"\#(examId)-p\#($0)","name":"P\#($0)"}"# }.joined(separator: ",")
            #expect(try await call(.post, "/api/exams/\(examId)/proctors", json: #"{"proctors":[\#(people)]}"#).status == .ok)
        }
        return Array(ids)
    }

    /// Session tokens for ids of one role.
    func tokens(_ examId: String, role: String, ids: [String]) async throws -> [String] {
        let list = ids.map { "\"\($0)\"" }.joined(separator: ",")
        let response = try await call(.post, "/api/exams/\(examId)/sessions", json: #"{"role":"\#(role)","ids":[\#(list)]}"#)
        #expect(response.status == .ok)
        return try decode(SessionsBody.self, response).sessions.map(\.token)
    }

    func end(_ examId: String, reason: String = "test") async throws -> EndBody {
        let response = try await call(.post, "/api/exams/\(examId)/end", json: #"{"reason":"\#(reason)"}"#)
        #expect(response.status == .ok)
        return try decode(EndBody.self, response)
    }
}

struct SessionsBody: Decodable {
    struct Session: Decodable {
        var id: String
        var token: String
        var socketUrl: String
        var pageUrl: String
    }
    var sessions: [Session]
}

struct EndBody: Decodable, Equatable {
    var examId: String
    var status: String
    var endDatetime: String
    var result: String
}

struct ErrorBody: Decodable {
    struct Detail: Decodable {
        var code: String
        var message: String
    }
    var error: Detail
}

func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(response.body.readableBytesView))
}

/// Waits until `GET /health` on `port` answers 200, within `limit` as a whole (each probe at
/// most 2 s: a node that takes the connection and never answers cannot hold it); throws
/// naming the last failure instead of dropping it.
func waitHealthy(port: Int, within limit: Duration = .seconds(60), _ what: String) async throws {
    let deadline = ContinuousClock.now + limit
    var last = "no probe was answered"
    while ContinuousClock.now < deadline {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/health")!)
        request.timeoutInterval = 2
        do {
            let (_, response) = try await URLSession.shared.data(for: request)
            let status = (response as? HTTPURLResponse)?.statusCode ?? 0
            if status == 200 { return }
            last = "answered \(status)"
        } catch {
            last = "\(error)"
        }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TestServerError("\(what) on port \(port) was not healthy within \(limit): \(last)")
}

/// Polls `condition` until it holds, failing the test after `limit` (a hang guard, not a timing check).
func eventually(
    _ what: Comment, within limit: Duration = .seconds(15), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async rethrows {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try? await Task.sleep(for: .milliseconds(25))
    }
    Issue.record("never happened: \(what)", sourceLocation: sourceLocation)
}

/// Runs `body` and waits for it at most `limit`: past that the test fails, naming what it
/// waited for, and goes on (the body is cancelled and left behind, so a product path that
/// hangs fails its own test and never holds the suite).
@discardableResult
func bounded<T: Sendable>(
    _ what: Comment, within limit: Duration, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T? {
    let answer = ResumeOnce<Result<T, any Error>?>()
    let outcome: Result<T, any Error>? = await withCheckedContinuation { continuation in
        answer.set(continuation)
        let work = Task {
            do { answer.resume(.success(try await body())) } catch { answer.resume(.failure(error)) }
        }
        Task {
            try? await Task.sleep(for: limit)
            answer.resume(nil)
            work.cancel()
        }
    }
    guard let outcome else {
        Issue.record("did not finish within \(limit): \(what)", sourceLocation: sourceLocation)
        return nil
    }
    return try outcome.get()
}

/// A continuation resumed once, by whichever comes first.
final class ResumeOnce<Value: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<Value, Never>?>(nil)

    func set(_ continuation: CheckedContinuation<Value, Never>) {
        self.continuation.withLock { $0 = continuation }
    }

    func resume(_ value: Value) {
        let waiting = continuation.withLock { continuation in
            defer { continuation = nil }
            return continuation
        }
        waiting?.resume(returning: value)
    }
}

/// One admin call on a connection of its own (an ephemeral session per call), as separate
/// clients make them: concurrent calls are served concurrently, not one after another.
func callOnOwnConnection(
    port: Int, _ method: String, _ path: String, json: String? = nil, token: String = TestNode.adminToken
) async throws -> (status: Int, body: String) {
    let session = URLSession(configuration: .ephemeral)
    defer { session.finishTasksAndInvalidate() }
    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
    request.httpMethod = method
    request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
    request.timeoutInterval = 60
    if let json {
        request.httpBody = Data(json.utf8)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    }
    let (data, response) = try await session.data(for: request)
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
}

/// DESIGN's socket message for an end of `examId` at `end`, as browsers get it.
func expectedFrame(_ examId: String, _ end: String) -> String {
    #"{"type":"exam_end","examId":"\#(examId)","message":"시험이 종료되었습니다.","timestamp":"\#(end)"}"#
}
