import NIOCore
import Testing

@testable import RedisClient

/// The typed command layer: the words each command sends, and how each reads its reply in
/// RESP2 and RESP3 shapes (the Redis engine's tests run them against a real redis-server).
@Suite("Typed Redis commands", .timeLimit(.minutes(10)))
struct CommandTests {
    func bulk(_ text: String) -> RESPValue { .bulkString(ByteBuffer(string: text)) }

    @Test("commands send the words Redis expects")
    func words() {
        #expect(MSET([(key: "a", value: "1"), (key: "b", value: "2")]).command.arguments == ["MSET", "a", "1", "b", "2"])
        #expect(SETNXPX("lock", "me", expiry: .milliseconds(1500)).command.arguments == ["SET", "lock", "me", "NX", "PX", "1500"])
        #expect(SETNXPX("lock", "me", expiry: .zero).command.arguments.last == "1", "PX 0 would be refused: at least 1 ms")
        #expect(
            XADD("s", approximateMaxLength: 10, fields: ["payload": "{}"]).command.arguments
                == ["XADD", "s", "MAXLEN", "~", "10", "*", "payload", "{}"])
        #expect(
            XREADGROUP(group: "g", consumer: "g", count: 5, block: .seconds(2), stream: "s", id: ">").command.arguments
                == ["XREADGROUP", "GROUP", "g", "g", "COUNT", "5", "BLOCK", "2000", "STREAMS", "s", ">"])
        #expect(EVALInteger("return 1", keys: ["k"], arguments: ["a", "b"]).command.arguments == ["EVAL", "return 1", "1", "k", "a", "b"])
    }

    @Test("replies are read as typed values, and a reply of another shape is an error")
    func replies() throws {
        #expect(try MGET(["a", "b"]).response(from: .array([bulk("1"), .bulkString(nil)])) == ["1", nil])
        #expect(throws: RedisClientError.unexpectedShape("MGET")) { try MGET(["a", "b"]).response(from: .array([bulk("1")])) }
        #expect(try SETNXPX("k", "v", expiry: .seconds(1)).response(from: .simpleString("OK")) == true)
        #expect(try SETNXPX("k", "v", expiry: .seconds(1)).response(from: .bulkString(nil)) == false)
        #expect(try SETNXPX("k", "v", expiry: .seconds(1)).response(from: .null) == false, "RESP3 null")
        #expect(try HGETALL("h").response(from: .array([bulk("f"), bulk("v")])) == ["f": "v"])
        #expect(try HGETALL("h").response(from: .map([.init(key: bulk("f"), value: bulk("v"))])) == ["f": "v"])
        #expect(try SMEMBERS("s").response(from: .set([bulk("x"), bulk("y")])) == ["x", "y"])
        #expect(throws: RedisClientError.unexpectedShape("XADD")) { try XADD("s", approximateMaxLength: 1, fields: [:]).response(from: .integer(1)) }
    }

    @Test("XREADGROUP reads RESP2 arrays, RESP3 maps, nothing, and trimmed pending entries")
    func streamReplies() throws {
        let read = XREADGROUP(group: "g", consumer: "g", count: 10, stream: "s", id: "0")
        let entry = RESPValue.array([bulk("1-0"), .array([bulk("payload"), bulk("{}")])])
        let trimmed = RESPValue.array([bulk("2-0"), .array(nil)])
        #expect(
            try read.response(from: .array([.array([bulk("s"), .array([entry, trimmed])])])) == [
                StreamEntry(id: "1-0", fields: ["payload": "{}"]), StreamEntry(id: "2-0", fields: nil),
            ])
        #expect(
            try read.response(from: .map([.init(key: bulk("s"), value: .array([entry]))])) == [
                StreamEntry(id: "1-0", fields: ["payload": "{}"])
            ])
        #expect(try read.response(from: .null).isEmpty)
        #expect(try read.response(from: .array(nil)).isEmpty)
        #expect(throws: RedisClientError.unexpectedShape("XREADGROUP")) { try read.response(from: .integer(3)) }
    }
}
