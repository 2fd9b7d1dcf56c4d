import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellRuntime
import ExamBellServer
import ExamBellSocket
import ExamBellWeb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// Hostile and broken browsers on the WebSocket: none of them hurts anyone else (issue 6).
@Suite("WebSocket limits", .timeLimit(.minutes(10)))
struct LimitsTests {
    @Test("HTTP: a body over 4 MiB gets 413 and changes nothing; a session token is no admin token")
    func httpLimits() async throws {
        let app = try await TestNode().node.application
        try await app.test(.router) { client in
            let ids = try await client.makeExam("e1", candidates: 1)
            let huge = String(repeating: "가", count: 1_500_000)  // 4.5 MB of UTF-8
            let response = try await client.call(.post, "/api/exams", json: #"{"examId":"big","title":"\#(huge)"}"#)
            #expect(response.status == .contentTooLarge)
            #expect(try decode(ErrorBody.self, response).error.code == "body_too_large")
            #expect(try await client.call(.get, "/api/exams/big").status == .notFound)
            let session = try await client.tokens("e1", role: "candidate", ids: ids)[0]
            for (method, path) in [(HTTPRequest.Method.get, "/api/exams"), (.post, "/api/exams/e1/end"), (.get, "/api/exams/e1/audit")] {
                let asSession = try await client.call(method, path, headers: [.authorization: "Bearer \(session)"])
                #expect(asSession.status == .unauthorized, "\(path)")
            }
            #expect(String(buffer: try await client.call(.get, "/api/exams/e1").body).contains(#""status":"in_progress""#))
        }
    }

    @Test("a browser sending a message over 4 KiB is disconnected")
    func oversizedMessage() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let ids = try await client.makeExam("e1", candidates: 1)
            let token = try await client.tokens("e1", role: "candidate", ids: ids)[0]
            let socket = try await RawWebSocket(port: try #require(client.port), token: token)
            await eventually("connected") { test.node.hub.connectionCount == 1 }
            try socket.sendText(String(repeating: "x", count: 8192))
            let closed = await socket.closeCode(within: .seconds(10))
            #expect(closed != nil, "the server closed the connection")
            await eventually("the node let it go") { test.node.hub.connectionCount == 0 }
            socket.close()
        }
    }

    @Test(
        "the socket node's own WebSocket pipeline: a fragmented ack is assembled, the close handshake is answered, a fragmented message over 4 KiB gets 1009, a refused handshake gets its JSON reason"
    )
    func protocolOnOwnPipeline() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let ids = try await client.makeExam("e1", candidates: 3)
            let tokens = try await client.tokens("e1", role: "candidate", ids: ids)
            _ = try await client.end("e1")
            // Told of the end on joining; its ack comes in two fragments.
            let acking = try await RawWebSocket(port: port, token: tokens[0])
            defer { acking.close() }
            try acking.sendFrame(opcode: 0x1, fin: false, Array(#"{"type":"ack","#.utf8))
            try acking.sendFrame(opcode: 0x0, fin: true, Array(#""examId":"e1"}"#.utf8))
            try await eventually("the fragmented ack was recorded") {
                try await test.backends.state.acknowledged(examId: "e1") == ["e1-c1"]
            }
            // The browser closes: the node answers with the same code and lets it go.
            try acking.sendFrame(opcode: 0x8, fin: true, [0x03, 0xE8])
            #expect(await acking.closeCode(within: .seconds(10)) == .some(1000))
            #expect(await acking.ended(within: .seconds(10)))
            // Frames under the 4 KiB frame limit that add up to a message over it.
            let big = try await RawWebSocket(port: port, token: tokens[1])
            defer { big.close() }
            try big.sendFrame(opcode: 0x1, fin: false, Array(repeating: UInt8(ascii: "x"), count: 3000))
            try big.sendFrame(opcode: 0x0, fin: true, Array(repeating: UInt8(ascii: "x"), count: 3000))
            #expect(await big.closeCode(within: .seconds(10)) == .some(1009))
            await eventually("the node holds no browser") { test.node.hub.connectionCount == 0 }
            // A refused handshake is answered like the API: status and JSON reason, then closed.
            let refused = try await RawWebSocket.refusal(port: port, token: "forged")
            #expect(refused.head.hasPrefix("HTTP/1.1 401"), "\(refused.head)")
            #expect(refused.body.contains(#""code":"unauthorized""#), "\(refused.body)")
            // Handshakes NIO's upgrader refuses itself, and upgrades to other protocols, are
            // answered too (they were closed without a word).
            let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            let malformed = [
                ("no key", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n", "invalid_websocket_handshake"),
                ("version 8", "Upgrade: websocket\r\nConnection: Upgrade\r\n\(key)Sec-WebSocket-Version: 8\r\n", "invalid_websocket_handshake"),
                (
                    "h2c", "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
                    "upgrade_not_supported"
                ),
            ]
            for (name, headers, code) in malformed {
                let request = "GET /ws?token=\(tokens[2]) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\(headers)\r\n"
                let socket = try RawWebSocket.bare(port: port, sending: Array(request.utf8))
                defer { socket.close() }
                #expect(await socket.ended(within: .seconds(10)), "\(name)")
                #expect(socket.received.hasPrefix("HTTP/1.1 400"), "\(name): \(socket.received)")
                #expect(socket.received.contains(#""code":"\#(code)""#), "\(name): \(socket.received)")
            }
            #expect(test.node.hub.connectionCount == 0)
        }
    }

    @Test("a browser flooding messages is closed with 1008; a well-behaved one is not")
    func flood() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let ids = try await client.makeExam("e1", candidates: 2)
            let tokens = try await client.tokens("e1", role: "candidate", ids: ids)
            let flooder = try await RawWebSocket(port: try #require(client.port), token: tokens[0])
            let calm = TestBrowser(port: try #require(client.port), token: tokens[1])
            await eventually("connected") { test.node.hub.connectionCount == 2 }
            for _ in 0..<100 { try flooder.sendText(#"{"type":"ack","examId":"e1"}"#) }
            #expect(await flooder.closeCode(within: .seconds(10)) == .some(1008))
            await eventually("only the flooder is gone") { test.node.hub.connectionCount == 1 }
            _ = try await client.end("e1")
            #expect(await calm.frames(atLeast: 1).count == 1)
            flooder.close()
            calm.close()
        }
    }

    @Test("a browser that stops answering pings is dropped")
    func deadConnection() async throws {
        let test = try await TestNode(pingInterval: .seconds(1))
        try await test.node.application.test(.live) { client in
            let ids = try await client.makeExam("e1", candidates: 1)
            let token = try await client.tokens("e1", role: "candidate", ids: ids)[0]
            let silent = try await RawWebSocket(port: try #require(client.port), token: token)  // reads nothing, never pongs
            await eventually("connected") { test.node.hub.connectionCount == 1 }
            await eventually("dropped after missing its pong", within: .seconds(20)) { test.node.hub.connectionCount == 0 }
            silent.close()
        }
    }

    @Test("browsers are kept alive by one ping timer per event loop, not one each; none runs once they left")
    func pingRounds() async throws {
        // No ping is due within the test (a pong a loaded machine holds back must not drop a
        // browser here): what is counted is who the rounds hold.
        let test = try await TestNode(pingInterval: .seconds(600))
        try await test.node.application.test(.live) { client in
            let pings = try #require(test.node.pings)
            let port = try #require(client.port)
            let ids = try await client.makeExam("e1", candidates: 40)
            let browsers = try await client.tokens("e1", role: "candidate", ids: ids).map { TestBrowser(port: port, token: $0) }
            // The hub counts a browser from its handshake's admission; it joins its round when
            // its handler is added, a moment later.
            await eventually("connected") { test.node.hub.connectionCount == 40 }
            try await eventually("every browser is in its loop's round") { try await pings.census().browsers == 40 }
            let held = try await pings.census()
            #expect(held.browsers == 40)
            #expect(held.timers >= 1 && held.timers <= System.coreCount, "a timer per loop: \(held.timers) for 40 browsers")
            browsers.forEach { $0.close() }
            await eventually("left") { test.node.hub.connectionCount == 0 }
            try await eventually("every round emptied and its timer stopped") { try await pings.census() == (0, 0) }
        }
    }

    @Test("a proctor that never reads is disconnected when its buffer fills; others are told the end meanwhile")
    func slowBrowser() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            // A big roster (2,000 candidates) pushed every 100 ms fills a non-reading proctor's buffers fast.
            let ids = try await client.makeExam("e1", candidates: 2000, proctors: 1)
            let proctorToken = try await client.tokens("e1", role: "proctor", ids: ["e1-p1"])[0]
            let slow = try await RawWebSocket(port: port, token: proctorToken)
            let candidate = TestBrowser(port: port, token: try await client.tokens("e1", role: "candidate", ids: [ids[0]])[0])
            await eventually("connected") { test.node.hub.connectionCount == 2 }
            let end = try await client.end("e1")
            #expect(await candidate.frames(atLeast: 1).first?.contains(end.endDatetime) == true)
            await eventually("the slow proctor was dropped", within: .seconds(60)) { test.node.hub.connectionCount == 1 }
            #expect(await slow.closeCode(within: .seconds(30)) != nil, "its connection was closed, not left open")
            slow.close()
            candidate.close()
        }
    }
}
