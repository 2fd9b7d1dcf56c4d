/// `MSET key value [key value …]`: sets every key in one command.
public struct MSET: RedisCommand {
    public typealias Response = Void
    public let command: RESPCommand

    public init(_ values: some Collection<(key: String, value: String)>) {
        var arguments = ["MSET"]
        arguments.reserveCapacity(values.count * 2 + 1)
        for (key, value) in values {
            arguments.append(key)
            arguments.append(value)
        }
        command = RESPCommand(arguments)
    }
}

/// `MGET key [key …]`: each key's value, nil where missing.
public struct MGET: RedisCommand {
    public let command: RESPCommand
    let count: Int

    public init(_ keys: [String]) {
        command = RESPCommand(["MGET"] + keys)
        count = keys.count
    }

    public func response(from reply: RESPValue) throws -> [String?] {
        guard let values = reply.elements, values.count == count else { throw RedisClientError.unexpectedShape("MGET") }
        return values.map(\.string)
    }
}

/// `DEL key [key …]`: how many keys were removed.
public struct DEL: RedisCommand {
    public let command: RESPCommand

    public init(_ keys: [String]) {
        command = RESPCommand(["DEL"] + keys)
    }

    public func response(from reply: RESPValue) throws -> Int {
        guard let count = reply.integer else { throw RedisClientError.unexpectedShape("DEL") }
        return Int(count)
    }
}

/// `SET key value NX PX milliseconds`: true when the key was set (it did not exist).
public struct SETNXPX: RedisCommand {
    public let command: RESPCommand

    public init(_ key: String, _ value: String, expiry: Duration) {
        command = ["SET", key, value, "NX", "PX", wholeMilliseconds(expiry)]
    }

    public func response(from reply: RESPValue) throws -> Bool {
        if reply.isNull { return false }
        guard reply.string == "OK" else { throw RedisClientError.unexpectedShape("SET NX") }
        return true
    }
}

/// `EVAL script numkeys key … arg …` of a script that returns an integer.
public struct EVALInteger: RedisCommand {
    public let command: RESPCommand

    public init(_ script: String, keys: [String], arguments: [String]) {
        command = RESPCommand(["EVAL", script, String(keys.count)] + keys + arguments)
    }

    public func response(from reply: RESPValue) throws -> Int {
        guard let value = reply.integer else { throw RedisClientError.unexpectedShape("EVAL") }
        return Int(value)
    }
}
