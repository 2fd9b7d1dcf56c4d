/// `SADD key member [member …]`: how many members were new.
public struct SADD: RedisCommand {
    public let command: RESPCommand

    public init(_ key: String, _ members: [String]) {
        command = RESPCommand(["SADD", key] + members)
    }

    public func response(from reply: RESPValue) throws -> Int {
        guard let count = reply.integer else { throw RedisClientError.unexpectedShape("SADD") }
        return Int(count)
    }
}

/// `SMEMBERS key`: the set's members.
public struct SMEMBERS: RedisCommand {
    public let command: RESPCommand

    public init(_ key: String) {
        command = ["SMEMBERS", key]
    }

    public func response(from reply: RESPValue) throws -> Set<String> {
        guard let members = reply.elements else { throw RedisClientError.unexpectedShape("SMEMBERS") }
        return Set(members.compactMap(\.string))
    }
}

/// `HSET key field value`.
public struct HSET: RedisCommand {
    public typealias Response = Void
    public let command: RESPCommand

    public init(_ key: String, field: String, value: String) {
        command = ["HSET", key, field, value]
    }

    /// `HSET key f1 v1 f2 v2 …`: many fields in one command.
    public init(_ key: String, fields: [(field: String, value: String)]) {
        var arguments = ["HSET", key]
        arguments.reserveCapacity(2 + 2 * fields.count)
        for (field, value) in fields {
            arguments.append(field)
            arguments.append(value)
        }
        command = RESPCommand(arguments)
    }
}

/// `HDEL key field [field …]`.
public struct HDEL: RedisCommand {
    public typealias Response = Void
    public let command: RESPCommand

    public init(_ key: String, field: String) {
        command = ["HDEL", key, field]
    }

    public init(_ key: String, fields: [String]) {
        command = RESPCommand(["HDEL", key] + fields)
    }
}

/// `HGETALL key`: field → value (a RESP2 flat array or a RESP3 map).
public struct HGETALL: RedisCommand {
    public let command: RESPCommand

    public init(_ key: String) {
        command = ["HGETALL", key]
    }

    public func response(from reply: RESPValue) throws -> [String: String] {
        guard let pairs = reply.pairs else { throw RedisClientError.unexpectedShape("HGETALL") }
        var result: [String: String] = [:]
        for (field, value) in pairs {
            if let field = field.string, let value = value.string { result[field] = value }
        }
        return result
    }
}
