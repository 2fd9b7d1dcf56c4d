import ExamBellCore
import RedisClient
import Synchronization

/// `queue:exam_end` as a Redis Stream.
///
/// `XADD queue:exam_end MAXLEN ~ <limit> * payload <json>` publishes; each socket node reads
/// through its own consumer group (`XGROUP CREATE … $ MKSTREAM`), first its pending entries
/// (`XREADGROUP … 0`), then new ones (`XREADGROUP … BLOCK … >`) on a connection of its own,
/// and acknowledges them (`XACK`) after the broadcast.
public final class RedisStreamsQueue: ExamEndQueue {
    let client: CountedRedis
    let maxLength: Int
    /// One blocking connection per consumer group, made on first read.
    private let blocking = Mutex<[String: DedicatedRedisConnection]>([:])

    /// `failures` counts this queue's failed calls for the node's `/metrics`.
    public init(client: RedisClient, maxLength: Int = 10_000, failures: BackendFailures = BackendFailures()) {
        self.client = CountedRedis(client: client, failures: failures)
        self.maxLength = maxLength
    }

    var stream: String { Self.streamName }

    @discardableResult
    public func publish(_ message: ExamEndQueueMessage) async throws -> String {
        let reply = try await client.call(["XADD", stream, "MAXLEN", "~", String(maxLength), "*", "payload", message.json])
        guard let id = reply.string else { throw RedisClientError.unexpectedShape("XADD") }
        return id
    }

    public func createGroup(_ group: String) async throws {
        do {
            try await client.call(["XGROUP", "CREATE", stream, group, "$", "MKSTREAM"])
        } catch let error as RedisError where error.code == "BUSYGROUP" {
            // It exists: a restarted node keeps its group and so its pending entries.
        }
    }

    public func pending(group: String, limit: Int) async throws -> [QueueEntry] {
        let reply = try await client.call(
            ["XREADGROUP", "GROUP", group, group, "COUNT", String(limit), "STREAMS", stream, "0"]
        )
        return try Self.entries(reply)
    }

    public func read(group: String, limit: Int, timeout: Duration) async throws -> [QueueEntry] {
        let connection = blocking.withLock { connections in
            if let connection = connections[group] { return connection }
            let connection = client.dedicatedConnection()
            connections[group] = connection
            return connection
        }
        let milliseconds = max(1, timeout.milliseconds)
        let reply = try await withTaskCancellationHandler {
            try await client.call(
                ["XREADGROUP", "GROUP", group, group, "COUNT", String(limit), "BLOCK", String(milliseconds), "STREAMS", stream, ">"],
                on: connection, blockFor: timeout
            )
        } onCancel: {
            // A blocked read cannot be taken back; closing its connection ends it.
            connection.close()
            _ = self.blocking.withLock { $0.removeValue(forKey: group) }
        }
        return try Self.entries(reply)
    }

    public func acknowledge(group: String, ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        try await client.call(RESPCommand(["XACK", stream, group] + ids))
    }

    /// Closes the blocking connections.
    public func shutdown() {
        let connections = blocking.withLock { connections in
            defer { connections.removeAll() }
            return Array(connections.values)
        }
        connections.forEach { $0.close() }
    }

    /// Reads an `XREADGROUP` reply: `[[stream, [[id, [field, value…]]…]]]`, a RESP3 map of
    /// stream → entries, or null when nothing came.
    static func entries(_ reply: RESPValue) throws -> [QueueEntry] {
        if reply.isNull { return [] }
        let perStream: [RESPValue]
        if let pairs = reply.pairs, case .map = reply {
            perStream = pairs.map(\.1)
        } else if let streams = reply.elements {
            perStream = try streams.map { stream in
                guard let parts = stream.elements, parts.count == 2 else { throw RedisClientError.unexpectedShape("XREADGROUP") }
                return parts[1]
            }
        } else {
            throw RedisClientError.unexpectedShape("XREADGROUP")
        }
        var result: [QueueEntry] = []
        for entries in perStream {
            for entry in entries.elements ?? [] {
                guard let parts = entry.elements, parts.count == 2, let id = parts[0].string else {
                    throw RedisClientError.unexpectedShape("stream entry")
                }
                // A pending entry trimmed away since comes back with null fields; it is
                // given an empty payload so that it is acknowledged and dropped.
                let fields = parts[1].pairs ?? []
                let payload = fields.first { $0.0.string == "payload" }?.1.string ?? ""
                result.append(QueueEntry(id: id, payload: payload))
            }
        }
        return result
    }
}
