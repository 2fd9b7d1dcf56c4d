import NIOCore
import NIOEmbedded
import Testing

@testable import RedisClient

@Suite("RESP decoding and encoding", .timeLimit(.minutes(10)))
struct RESPDecoderTests {
    func decodeAll(_ text: String, splitEvery step: Int? = nil) throws -> [RESPValue] {
        var decoder = RESPDecoder()
        var buffer = ByteBuffer()
        var values: [RESPValue] = []
        let bytes = Array(text.utf8)
        let chunk = step ?? bytes.count
        for start in stride(from: 0, to: bytes.count, by: max(1, chunk)) {
            buffer.writeBytes(bytes[start..<min(start + chunk, bytes.count)])
            while let value = try decoder.decode(buffer: &buffer) {
                values.append(value)
            }
        }
        #expect(buffer.readableBytes == 0, "every byte consumed")
        return values
    }

    @Test("RESP2 types")
    func resp2() throws {
        let values = try decodeAll("+OK\r\n-ERR bad thing\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*-1\r\n*2\r\n:1\r\n*1\r\n$0\r\n\r\n")
        #expect(
            values == [
                .simpleString("OK"), .error("ERR bad thing"), .integer(42), .bulkString(ByteBuffer(string: "hello")),
                .bulkString(nil), .array(nil), .array([.integer(1), .array([.bulkString(ByteBuffer())])]),
            ])
    }

    @Test("RESP3 types: null, double, boolean, big number, verbatim, map, set, push, blob error, attribute")
    func resp3() throws {
        let values = try decodeAll(
            "_\r\n,3.5\r\n,inf\r\n#t\r\n(12345678901234567890\r\n=8\r\ntxt:some\r\n%1\r\n+k\r\n:1\r\n~2\r\n:1\r\n:2\r\n"
                + ">2\r\n+message\r\n+x\r\n!5\r\nERR x\r\n|1\r\n+ttl\r\n:3\r\n+value\r\n"
        )
        #expect(
            values == [
                .null, .double(3.5), .double(.infinity), .boolean(true), .bigNumber("12345678901234567890"),
                .verbatimString("some"), .map([.init(key: .simpleString("k"), value: .integer(1))]), .set([.integer(1), .integer(2)]),
                .push([.simpleString("message"), .simpleString("x")]), .error("ERR x"), .simpleString("value"),
            ])
    }

    @Test("values split across reads at every byte, including a large bulk string", arguments: [1, 2, 7, 1000])
    func partial(_ step: Int) throws {
        let big = String(repeating: "x", count: 200_000)
        let values = try decodeAll("*3\r\n$\(big.utf8.count)\r\n\(big)\r\n:7\r\n+fin\r\n:8\r\n", splitEvery: step)
        #expect(values == [.array([.bulkString(ByteBuffer(string: big)), .integer(7), .simpleString("fin")]), .integer(8)])
    }

    @Test("garbage is a protocol error, not a crash")
    func garbage() {
        var decoder = RESPDecoder()
        var buffer = ByteBuffer(string: "?what\r\n")
        #expect(throws: RESPProtocolError.self) { try decoder.decode(buffer: &buffer) }
        var bad = ByteBuffer(string: ":12x\r\n")
        #expect(throws: RESPProtocolError.self) { try decoder.decode(buffer: &bad) }
        var deep = ByteBuffer(string: String(repeating: "*1\r\n", count: 100) + ":1\r\n")
        #expect(throws: RESPProtocolError.tooDeep) { try decoder.decode(buffer: &deep) }
    }

    @Test("commands are encoded as arrays of bulk strings, UTF-8 lengths in bytes")
    func encode() {
        var buffer = ByteBuffer()
        RESPCommand(["SET", "exam_plan:e1", "시험"]).encode(into: &buffer)
        #expect(String(buffer: buffer) == "*3\r\n$3\r\nSET\r\n$12\r\nexam_plan:e1\r\n$6\r\n시험\r\n")
    }
}

@Suite("Command handler on a test channel", .timeLimit(.minutes(10)))
struct RedisCommandHandlerTests {
    func makeChannel() async throws -> NIOAsyncTestingChannel {
        let channel = NIOAsyncTestingChannel()
        try await channel.pipeline.addHandlers([ByteToMessageHandler(RESPDecoder()), RedisCommandHandler()])
        return channel
    }

    @Test("pipelined commands: one write, replies matched in order even when split")
    func pipelining() async throws {
        let channel = try await makeChannel()
        let promises = (0..<3).map { _ in channel.eventLoop.makePromise(of: RESPValue.self) }
        try await channel.writeOutbound(RedisRequest(commands: [["GET", "a"], ["GET", "b"], ["INCR", "c"]], promises: promises))
        let written = try #require(try await channel.readOutbound(as: ByteBuffer.self))
        #expect(String(buffer: written) == "*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n*2\r\n$4\r\nINCR\r\n$1\r\nc\r\n")
        try await channel.writeInbound(ByteBuffer(string: "$1\r\nA\r\n$-"))
        try await channel.writeInbound(ByteBuffer(string: "1\r\n:"))
        try await channel.writeInbound(ByteBuffer(string: "5\r\n"))
        #expect(try await promises[0].futureResult.get() == .bulkString(ByteBuffer(string: "A")))
        #expect(try await promises[1].futureResult.get() == .bulkString(nil))
        #expect(try await promises[2].futureResult.get() == .integer(5))
    }

    @Test("an error reply completes its own command only; pushes are skipped")
    func errorReplies() async throws {
        let channel = try await makeChannel()
        let promises = (0..<2).map { _ in channel.eventLoop.makePromise(of: RESPValue.self) }
        try await channel.writeOutbound(RedisRequest(commands: [["XGROUP", "CREATE"], ["PING"]], promises: promises))
        try await channel.writeInbound(ByteBuffer(string: "-BUSYGROUP Consumer Group name already exists\r\n>1\r\n+invalidate\r\n+PONG\r\n"))
        let first = try await promises[0].futureResult.get()
        #expect(throws: RedisError.self) { try first.throwingError() }
        #expect((try? first.throwingError()) == nil)
        do {
            try first.throwingError()
        } catch {
            #expect(error.code == "BUSYGROUP")
        }
        #expect(try await promises[1].futureResult.get() == .simpleString("PONG"))
    }

    @Test("a closed connection fails every waiting command")
    func closed() async throws {
        let channel = try await makeChannel()
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        try await channel.writeOutbound(RedisRequest(commands: [["GET", "a"]], promises: [promise]))
        try await channel.close()
        await #expect(throws: RedisClientError.connectionClosed) { try await promise.futureResult.get() }
    }

    @Test("redis:// URLs")
    func urls() throws {
        let full = try RedisConfiguration(url: "redis://:s3cret@127.0.0.1:6380/2")
        #expect(full == RedisConfiguration(host: "127.0.0.1", port: 6380, password: "s3cret", database: 2))
        #expect(!full.description.contains("s3cret"))
        let user = try RedisConfiguration(url: "redis://app:pw@redis.local")
        #expect(user.username == "app")
        #expect(user.port == 6379)
        #expect(throws: RedisURLError.self) { try RedisConfiguration(url: "http://x") }
        #expect(throws: RedisURLError.self) { try RedisConfiguration(url: "redis://h/x") }
    }
}
