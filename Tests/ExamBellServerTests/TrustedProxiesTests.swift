import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellRuntime
import ExamBellServer
import ExamBellSocket
import ExamBellWeb
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// Behind a load balancer, per-address throttles and caps count the client it forwards for,
/// and nobody else picks the address they are counted by (issue 15).
@Suite("Trusted proxies", .timeLimit(.minutes(10)))
struct TrustedProxiesTests {
    @Test("the client is the rightmost forwarded address that is not a trusted proxy; anyone else's X-Forwarded-For is ignored")
    func client() throws {
        let proxies = try TrustedProxies(["10.0.0.1", " 10.0.0.2", "::1"])
        #expect(proxies.client(peer: "10.0.0.1", forwardedFor: ["203.0.113.7"]) == "203.0.113.7")
        #expect(proxies.client(peer: "10.0.0.1", forwardedFor: ["6.6.6.6, 203.0.113.7"]) == "203.0.113.7", "a spoofed left entry")
        #expect(proxies.client(peer: "10.0.0.1", forwardedFor: ["203.0.113.7", "10.0.0.2"]) == "203.0.113.7", "through two proxies")
        #expect(proxies.client(peer: "::1", forwardedFor: ["2001:db8::1"]) == "2001:db8::1")
        #expect(proxies.client(peer: "10.0.0.1", forwardedFor: []) == "10.0.0.1", "no header: the proxy itself")
        #expect(proxies.client(peer: "10.0.0.1", forwardedFor: ["not-an-address"]) == "10.0.0.1")
        #expect(proxies.client(peer: "10.0.0.1", forwardedFor: ["10.0.0.2"]) == "10.0.0.1", "only proxies named")
        #expect(proxies.client(peer: "198.51.100.9", forwardedFor: ["203.0.113.7"]) == "198.51.100.9", "not trusted")
        #expect(TrustedProxies().client(peer: "10.0.0.1", forwardedFor: ["203.0.113.7"]) == "10.0.0.1", "none trusted")
        #expect(throws: ExamBellError.self) { try TrustedProxies(["10.0.0.0/8"]) }
        #expect(throws: ExamBellError.self) { try TrustedProxies(["lb.example"]) }
    }

    static func forwarded(_ address: String, bearer: String) -> HTTPFields {
        [.authorization: "Bearer \(bearer)", HTTPField.Name("X-Forwarded-For")!: address]
    }

    @Test("wrong tokens are throttled per forwarded client behind a trusted proxy, per connection's address otherwise")
    func throttles() async throws {
        let behind = try await TestNode { $0.connectionLimits.trustedProxies = try! TrustedProxies(["127.0.0.1"]) }
        try await behind.node.application.test(.live) { client in
            for _ in 0..<20 {
                #expect(try await client.call(.get, "/api/exams", headers: Self.forwarded("203.0.113.7", bearer: "guess")).status == .unauthorized)
            }
            let refused = try await client.call(.get, "/api/exams", headers: Self.forwarded("203.0.113.7", bearer: "guess"))
            #expect(refused.status == .tooManyRequests)
            #expect(
                try await client.call(.get, "/api/exams", headers: Self.forwarded("203.0.113.8", bearer: "guess")).status == .unauthorized,
                "another client behind the same load balancer is not locked out"
            )
            #expect(try await client.call(.get, "/api/exams").status == .ok, "nor the operator connected without the header")
        }
        let direct = try await TestNode()
        try await direct.node.application.test(.live) { client in
            for index in 0..<20 {
                _ = try await client.call(.get, "/api/exams", headers: Self.forwarded("203.0.113.\(index)", bearer: "guess"))
            }
            let refused = try await client.call(.get, "/api/exams", headers: Self.forwarded("203.0.113.99", bearer: "guess"))
            #expect(refused.status == .tooManyRequests, "a header of its own choosing does not give a guesser new addresses")
        }
    }

    @Test("a trusted proxy's unfinished connections are not capped per address; sockets per client address can be capped")
    func caps() async throws {
        let half = Array("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".utf8)
        let test = try await TestNode { configuration in
            configuration.connectionLimits.trustedProxies = try! TrustedProxies(["127.0.0.1"])
            configuration.connectionLimits.maxPendingPerAddress = 2
            configuration.connectionLimits.headerTimeout = .seconds(120)
            configuration.maxConnectionsPerAddress = 2
        }
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let slow = try (0..<6).map { _ in try RawWebSocket.bare(port: port, sending: half) }
            defer { slow.forEach { $0.close() } }
            #expect(try await client.call(.get, "/health", headers: [:]).status == .ok)
            for socket in slow { #expect(socket.readAvailable(), "held, not refused: \(socket.received)") }

            let ids = try await client.makeExam("e1", candidates: 3)
            let tokens = try await client.tokens("e1", role: "candidate", ids: ids)
            let from = "X-Forwarded-For: 203.0.113.7\r\n"
            var open = [
                try await RawWebSocket(port: port, token: tokens[0], headers: from),
                try await RawWebSocket(port: port, token: tokens[1], headers: from),
            ]
            defer { open.forEach { $0.close() } }
            await eventually("both joined") { test.node.hub.connectionCount == 2 }
            let third = try await RawWebSocket.refusal(port: port, token: tokens[2], headers: from)
            #expect(third.head.hasPrefix("HTTP/1.1 429"), "\(third.head)")
            #expect(third.body.contains(#""code":"budget_exceeded""#))
            open.append(try await RawWebSocket(port: port, token: tokens[2], headers: "X-Forwarded-For: 203.0.113.8\r\n"))
            open[0].close()
            await eventually("a closed socket frees its place") { test.node.hub.connectionCount == 2 }
            open[0] = try await RawWebSocket(port: port, token: tokens[0], headers: from)
        }
    }
}
