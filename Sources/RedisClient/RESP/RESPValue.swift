import NIOCore

/// One value of the Redis protocol, RESP2 or RESP3.
public indirect enum RESPValue: Sendable, Equatable {
    case simpleString(String)
    /// An error reply (`-ERR …` or a RESP3 blob error).
    case error(String)
    case integer(Int64)
    /// A bulk string; nil is RESP2's null bulk string.
    case bulkString(ByteBuffer?)
    /// An array; nil is RESP2's null array.
    case array([RESPValue]?)
    /// RESP3 null.
    case null
    case double(Double)
    case boolean(Bool)
    case bigNumber(String)
    case verbatimString(String)
    /// RESP3 map, as key-value pairs in the order received.
    case map([Pair])
    case set([RESPValue])
    /// RESP3 out-of-band push (not a reply to a command).
    case push([RESPValue])

    /// One entry of a RESP3 map.
    public struct Pair: Sendable, Equatable {
        public var key: RESPValue
        public var value: RESPValue
    }

    /// The value as text: simple, bulk and verbatim strings; nil otherwise.
    public var string: String? {
        switch self {
        case .simpleString(let text), .verbatimString(let text): text
        case .bulkString(let buffer?): String(buffer: buffer)
        default: nil
        }
    }

    /// The value as an integer.
    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// The elements of an array, set or push; nil for null and other kinds.
    public var elements: [RESPValue]? {
        switch self {
        case .array(let values?), .set(let values), .push(let values): values
        default: nil
        }
    }

    /// Whether the value is a null of either protocol version.
    public var isNull: Bool {
        switch self {
        case .null, .bulkString(nil), .array(nil): true
        default: false
        }
    }

    /// Key-value pairs of a RESP3 map, or of a RESP2 flat array `[k1, v1, k2, v2…]`.
    public var pairs: [(RESPValue, RESPValue)]? {
        switch self {
        case .map(let pairs): return pairs.map { ($0.key, $0.value) }
        case .array(let values?) where values.count % 2 == 0:
            return stride(from: 0, to: values.count, by: 2).map { (values[$0], values[$0 + 1]) }
        default: return nil
        }
    }

    /// Self, or a thrown `RedisError` for an error reply.
    @discardableResult
    public func throwingError() throws(RedisError) -> RESPValue {
        if case .error(let message) = self { throw RedisError(message: message) }
        return self
    }
}

/// An error reply of the Redis server, like `NOGROUP No such key…`.
public struct RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    /// The first word: `ERR`, `NOGROUP`, `BUSYGROUP`, `WRONGPASS`…
    public var code: String { String(message.prefix { $0 != " " }) }
    public var description: String { "Redis error: \(message)" }
}
