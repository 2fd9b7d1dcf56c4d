/// One entry of a stream as `XREADGROUP` returns it.
public struct StreamEntry: Sendable, Hashable {
    public var id: String
    /// The entry's fields; nil for a pending entry trimmed from the stream since it was read.
    public var fields: [String: String]?

    public init(id: String, fields: [String: String]?) {
        self.id = id
        self.fields = fields
    }
}

/// `XADD stream MAXLEN ~ limit * field value …`: the new entry's id.
public struct XADD: RedisCommand {
    public let command: RESPCommand

    public init(_ stream: String, approximateMaxLength: Int, fields: KeyValuePairs<String, String>) {
        var arguments = ["XADD", stream, "MAXLEN", "~", String(approximateMaxLength), "*"]
        for (field, value) in fields {
            arguments.append(field)
            arguments.append(value)
        }
        command = RESPCommand(arguments)
    }

    public func response(from reply: RESPValue) throws -> String {
        guard let id = reply.string else { throw RedisClientError.unexpectedShape("XADD") }
        return id
    }
}

/// `XGROUP CREATE stream group $ MKSTREAM`: a consumer group reading from now on (the stream
/// made if missing). Redis answers `BUSYGROUP` when the group exists.
public struct XGROUPCREATE: RedisCommand {
    public typealias Response = Void
    public let command: RESPCommand

    public init(_ stream: String, group: String) {
        command = ["XGROUP", "CREATE", stream, group, "$", "MKSTREAM"]
    }
}

/// `XREADGROUP GROUP group consumer COUNT n [BLOCK ms] STREAMS stream id`: `id` "0" reads the
/// group's pending entries, ">" new ones. Nothing read is an empty list.
public struct XREADGROUP: RedisCommand {
    public let command: RESPCommand

    public init(group: String, consumer: String, count: Int, block: Duration? = nil, stream: String, id: String) {
        var arguments = ["XREADGROUP", "GROUP", group, consumer, "COUNT", String(count)]
        if let block { arguments += ["BLOCK", wholeMilliseconds(block)] }
        arguments += ["STREAMS", stream, id]
        command = RESPCommand(arguments)
    }

    /// `[[stream, [[id, [field, value…]]…]]]` (RESP2), a map of stream → entries (RESP3), or
    /// null when nothing came.
    public func response(from reply: RESPValue) throws -> [StreamEntry] {
        if reply.isNull { return [] }
        let perStream: [RESPValue]
        if case .map(let pairs) = reply {
            perStream = pairs.map(\.value)
        } else if let streams = reply.elements {
            perStream = try streams.map { stream in
                guard let parts = stream.elements, parts.count == 2 else { throw RedisClientError.unexpectedShape("XREADGROUP") }
                return parts[1]
            }
        } else {
            throw RedisClientError.unexpectedShape("XREADGROUP")
        }
        return try perStream.flatMap(StreamEntry.entries(of:))
    }
}

/// `XRANGE stream start + COUNT n`: entries from `start` (an id, `(id` for after it) on.
public struct XRANGE: RedisCommand {
    public let command: RESPCommand

    public init(_ stream: String, start: String, count: Int) {
        command = RESPCommand(["XRANGE", stream, start, "+", "COUNT", String(count)])
    }

    public func response(from reply: RESPValue) throws -> [StreamEntry] {
        try StreamEntry.entries(of: reply)
    }
}

extension StreamEntry {
    /// A list of `[id, [field, value…]]` entries.
    static func entries(of list: RESPValue) throws -> [StreamEntry] {
        try (list.elements ?? []).map { entry in
            guard let parts = entry.elements, parts.count == 2, let id = parts[0].string else {
                throw RedisClientError.unexpectedShape("stream entry")
            }
            let fields = parts[1].pairs.map { pairs in
                Dictionary(pairs.compactMap { key, value in key.string.map { ($0, value.string ?? "") } }, uniquingKeysWith: { $1 })
            }
            return StreamEntry(id: id, fields: fields)
        }
    }
}

/// `XACK stream group id …`: how many entries were acknowledged.
public struct XACK: RedisCommand {
    public let command: RESPCommand

    public init(_ stream: String, group: String, ids: [String]) {
        command = RESPCommand(["XACK", stream, group] + ids)
    }

    public func response(from reply: RESPValue) throws -> Int {
        guard let count = reply.integer else { throw RedisClientError.unexpectedShape("XACK") }
        return Int(count)
    }
}
