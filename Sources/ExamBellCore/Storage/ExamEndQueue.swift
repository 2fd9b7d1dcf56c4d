/// The queue (큐 서버) `queue:exam_end` between web nodes and socket nodes.
///
/// Redis Streams semantics: every consumer group sees every entry (fan-out: one group per
/// socket node, named after its `--node-id`); an entry read by a group stays pending until
/// acknowledged, so a node that dies before broadcasting gets it again from `pending`.
/// A group created now starts at the end of the stream: it does not replay history.
/// Engines: `MemoryQueue` (embedded), `RedisStreamsQueue`.
public protocol ExamEndQueue: Sendable {
    /// The stream's name: `queue:exam_end`.
    static var streamName: String { get }

    /// Appends a message (trimming old entries); returns its entry id.
    @discardableResult
    func publish(_ message: ExamEndQueueMessage) async throws -> String

    /// Creates `group` at the end of the stream when it does not exist.
    func createGroup(_ group: String) async throws

    /// Entries delivered to `group` but not yet acknowledged, oldest first.
    func pending(group: String, limit: Int) async throws -> [QueueEntry]

    /// New entries for `group`, waiting up to `timeout` for one; empty when none came.
    func read(group: String, limit: Int, timeout: Duration) async throws -> [QueueEntry]

    /// Acknowledges entries of `group` after they were broadcast.
    func acknowledge(group: String, ids: [String]) async throws
}

extension ExamEndQueue {
    public static var streamName: String { "queue:exam_end" }
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
}
