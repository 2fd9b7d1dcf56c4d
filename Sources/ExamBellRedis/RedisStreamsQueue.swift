import ExamBellCore
import RedisClient
import Synchronization

/// A queue stream (`queue:exam_end`, `queue:exam_events`) as a Redis Stream.
///
/// `XADD <stream> MAXLEN ~ <limit> * payload <json>` publishes; each socket node reads
/// through its own consumer group (`XGROUP CREATE … $ MKSTREAM`), first its pending entries
/// (`XREADGROUP … 0`), then new ones (`XREADGROUP … BLOCK … >`) on a connection of its own,
/// and acknowledges them (`XACK`) after the broadcast.
public final class RedisStreamsQueue: ExamEndQueue {
    let client: CountedRedis
    let maxLength: Int
    /// One blocking connection per consumer group, made on first read.
    private let blocking = Mutex<[String: DedicatedRedisConnection]>([:])

    /// `failures` counts this queue's failed calls for the node's `/metrics`.
    public init(
        client: RedisClient, stream: String = QueueStream.examEnd, maxLength: Int = 10_000, failures: BackendFailures = BackendFailures()
    ) {
        self.client = CountedRedis(client: client, failures: failures)
        self.stream = stream
        self.maxLength = maxLength
    }

    public let stream: String

    @discardableResult
    public func publish(payload: String) async throws -> String {
        try await client.execute(XADD(stream, approximateMaxLength: maxLength, fields: ["payload": payload]))
    }

    public func createGroup(_ group: String) async throws {
        do {
            try await client.executeKeepingErrorReply(XGROUPCREATE(stream, group: group))
        } catch let error as RedisError where error.code == "BUSYGROUP" {
            // It exists: a restarted node keeps its group and so its pending entries.
        }
    }

    public func pending(group: String, limit: Int) async throws -> [QueueEntry] {
        Self.entries(try await client.execute(XREADGROUP(group: group, consumer: group, count: limit, stream: stream, id: "0")))
    }

    public func read(group: String, limit: Int, timeout: Duration) async throws -> [QueueEntry] {
        let connection = blocking.withLock { connections in
            if let connection = connections[group] { return connection }
            let connection = client.dedicatedConnection()
            connections[group] = connection
            return connection
        }
        let entries = try await withTaskCancellationHandler {
            try await client.execute(
                XREADGROUP(group: group, consumer: group, count: limit, block: timeout, stream: stream, id: ">"),
                on: connection, blockFor: timeout
            )
        } onCancel: {
            // A blocked read cannot be taken back; closing its connection ends it.
            connection.close()
            _ = self.blocking.withLock { $0.removeValue(forKey: group) }
        }
        return Self.entries(entries)
    }

    public func acknowledge(group: String, ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        try await client.execute(XACK(stream, group: group, ids: ids))
    }

    public var failovers: Int { client.client.failovers }

    /// Reads the entries since `since` (`XRANGE <ms>-0 +`, in pages) and answers which of
    /// `payloads` none of them holds.
    public func missing(_ payloads: [String], since: Timestamp) async throws -> [String] {
        var wanted = Set(payloads)
        var start = "\(Int64(since.secondsSince1970 * 1000))-0"
        while !wanted.isEmpty {
            let page = try await client.execute(XRANGE(stream, start: start, count: 1000))
            for entry in page { if let payload = entry.fields?["payload"] { wanted.remove(payload) } }
            guard page.count == 1000, let last = page.last else { break }
            start = "(" + last.id
        }
        return payloads.filter { wanted.contains($0) }
    }

    /// Closes the blocking connections.
    public func shutdown() {
        let connections = blocking.withLock { connections in
            defer { connections.removeAll() }
            return Array(connections.values)
        }
        connections.forEach { $0.close() }
    }

    /// Stream entries as queue entries: a pending entry trimmed away since it was read comes
    /// back without fields and gets an empty payload, so that it is acknowledged and dropped.
    static func entries(_ entries: [StreamEntry]) -> [QueueEntry] {
        entries.map { QueueEntry(id: $0.id, payload: $0.fields?["payload"] ?? "") }
    }
}
