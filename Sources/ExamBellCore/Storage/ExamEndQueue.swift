/// The queue (큐 서버) between web nodes and socket nodes: one stream per instance,
/// `queue:exam_end` (DESIGN's entries) or `queue:exam_events` (the exam day's `ExamEvent`s).
///
/// Redis Streams semantics: every consumer group sees every entry (fan-out: one group per
/// socket node, named after its `--node-id`); an entry read by a group stays pending until
/// acknowledged, so a node that dies before broadcasting gets it again from `pending`.
/// A group created now starts at the end of the stream: it does not replay history.
/// Engines: `MemoryQueue` (embedded), `RedisStreamsQueue`.
public protocol ExamEndQueue: Sendable {
    /// The stream's name: `queue:exam_end` or `queue:exam_events`.
    var stream: String { get }

    /// Appends an entry whose `payload` field is `payload` (trimming old entries); returns its id.
    @discardableResult
    func publish(payload: String) async throws -> String

    /// Creates `group` at the end of the stream when it does not exist.
    func createGroup(_ group: String) async throws

    /// Entries delivered to `group` but not yet acknowledged, oldest first.
    func pending(group: String, limit: Int) async throws -> [QueueEntry]

    /// New entries for `group`, waiting up to `timeout` for one; empty when none came.
    func read(group: String, limit: Int, timeout: Duration) async throws -> [QueueEntry]

    /// Acknowledges entries of `group` after they were broadcast.
    func acknowledge(group: String, ids: [String]) async throws

    /// How many times the server under the stream changed (a Redis failover): replication is
    /// asynchronous, so entries published just before may be missing on the new primary.
    var failovers: Int { get }

    /// Those of `payloads` that no entry of the stream published since `since` holds.
    func missing(_ payloads: [String], since: Timestamp) async throws -> [String]
}

/// The streams' names.
public enum QueueStream {
    /// DESIGN's `exam_end` entries.
    public static let examEnd = "queue:exam_end"
    /// The exam day's events (`ExamEvent`).
    public static let events = "queue:exam_events"
}

extension ExamEndQueue {
    /// One engine never fails over (the memory engine): nothing is ever missing.
    public var failovers: Int { 0 }

    public func missing(_ payloads: [String], since: Timestamp) async throws -> [String] { [] }

    /// Publishes an `exam_end` entry.
    @discardableResult
    public func publish(_ message: ExamEndQueueMessage) async throws -> String {
        try await publish(payload: message.json)
    }

    /// Publishes an exam-day event.
    @discardableResult
    public func publish(_ event: ExamEvent) async throws -> String {
        try await publish(payload: event.json)
    }
}

/// One entry of the queue. `message` is nil when its payload could not be read; the
/// consumer logs and acknowledges such an entry rather than retrying it forever.
public struct QueueEntry: Sendable, Hashable {
    public var id: String
    public var payload: String

    public init(id: String, payload: String) {
        self.id = id
        self.payload = payload
    }

    /// The decoded message, or nil for a malformed payload.
    public var message: ExamEndQueueMessage? { try? ExamEndQueueMessage(json: payload) }

    /// The decoded exam-day event, or nil for a malformed payload.
    public var event: ExamEvent? { try? ExamEvent(json: payload) }
}
