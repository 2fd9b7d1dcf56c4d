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
import Testing

/// What a CBT platform's own pages use (issue 26, DESIGN "Platform integration"): the browser
/// SDK's files, the server's clock, CORS for `--allowed-origin`, and the device clock offset
/// a page reports with its lock. The SDK itself runs in Chromium (Tests/Python/test_platform.py).
@Suite("Platform integration", .timeLimit(.minutes(10)))
struct PlatformTests {
    static let platform = "https://cbt.example"

    func node() async throws -> TestNode {
        try await TestNode { $0.platformOrigins = [Self.platform] }
    }

    @Test("the SDK is served as a cacheable ES module with its types, revalidated by a versioned ETag")
    func sdkFiles() async throws {
        let test = try await node()
        try await test.node.application.test(.router) { client in
            let module = try await client.execute(uri: "/sdk/exambell.js", method: .get)
            #expect(module.status == .ok)
            #expect(module.headers[.contentType] == "text/javascript; charset=utf-8")
            #expect(String(buffer: module.body).contains("export async function connect"))
            let etag = try #require(module.headers[.eTag])
            #expect(etag.hasPrefix("\"1.0.0-"))
            #expect(module.headers[.cacheControl]?.contains("max-age=300") == true)
            let again = try await client.execute(uri: "/sdk/exambell.js", method: .get, headers: [.ifNoneMatch: etag])
            #expect(again.status == .notModified)
            #expect(again.body.readableBytes == 0)
            let changed = try await client.execute(uri: "/sdk/exambell.js", method: .get, headers: [.ifNoneMatch: "\"0.9-old\""])
            #expect(changed.status == .ok)
            let types = try await client.execute(uri: "/sdk/exambell.d.ts", method: .get)
            #expect(types.status == .ok)
            #expect(String(buffer: types.body).contains("export function connect(options: ConnectOptions): Promise<Bell>;"))
            #expect(try await client.execute(uri: "/sdk/nothing.js", method: .get).status == .notFound)
        }
    }

    @Test("/api/clock answers the server's time without a credential or a backend")
    func clock() async throws {
        let test = try await node()
        try await test.node.application.test(.router) { client in
            let before = Date().timeIntervalSince1970 * 1000
            let answer = try await client.execute(uri: "/api/clock", method: .get)
            let after = Date().timeIntervalSince1970 * 1000
            #expect(answer.status == .ok)
            let body = try JSONSerialization.jsonObject(with: Data(String(buffer: answer.body).utf8)) as? [String: Any]
            let time = try #require(body?["serverTimeMs"] as? Double)
            #expect(time >= before.rounded(.down) && time <= after.rounded(.up))
        }
    }

    @Test("an allowed origin gets CORS on the browser API and the SDK, preflights and errors included; any other origin is refused")
    func cors() async throws {
        let test = try await node()
        try await test.node.application.test(.router) { client in
            let origin = HTTPField.Name("Origin")!
            let preflight: HTTPFields = [
                origin: Self.platform, HTTPField.Name("Access-Control-Request-Method")!: "PUT",
                HTTPField.Name("Access-Control-Request-Headers")!: "authorization, content-type",
            ]
            let allowed = try await client.execute(uri: "/api/answers", method: .options, headers: preflight)
            #expect(allowed.status == .noContent)
            #expect(allowed.headers[.accessControlAllowOrigin] == Self.platform)
            #expect(allowed.headers[.accessControlAllowMethods]?.contains("PUT") == true)
            #expect(allowed.headers[.accessControlAllowHeaders]?.lowercased().contains("authorization") == true)

            // An error is readable by the page too.
            let refused = try await client.execute(uri: "/api/session", method: .get, headers: [origin: Self.platform])
            #expect(refused.status == .unauthorized)
            #expect(refused.headers[.accessControlAllowOrigin] == Self.platform)
            let sdk = try await client.execute(uri: "/sdk/exambell.js", method: .get, headers: [origin: Self.platform])
            #expect(sdk.headers[.accessControlAllowOrigin] == Self.platform)
            #expect(sdk.headers[.vary] == "Origin")

            var other = preflight
            other[origin] = "https://evil.example"
            let otherPreflight = try await client.execute(uri: "/api/answers", method: .options, headers: other)
            #expect(otherPreflight.status == .forbidden)
            #expect(String(buffer: otherPreflight.body).contains(#""code":"origin_not_allowed""#))
            #expect(otherPreflight.headers[.accessControlAllowOrigin] == nil)
            let otherCall = try await client.execute(uri: "/api/session", method: .get, headers: [origin: "https://evil.example"])
            #expect(otherCall.status == .forbidden)
            let otherSDK = try await client.execute(uri: "/sdk/exambell.js", method: .get, headers: [origin: "https://evil.example"])
            #expect(otherSDK.headers[.accessControlAllowOrigin] == nil, "another origin cannot import the module")
        }
        // Without --allowed-origin, no origin gets CORS.
        let closed = try await TestNode()
        try await closed.node.application.test(.router) { client in
            let answer = try await client.execute(uri: "/sdk/exambell.js", method: .get, headers: [HTTPField.Name("Origin")!: Self.platform])
            #expect(answer.headers[.accessControlAllowOrigin] == nil)
        }
    }

    @Test("--allowed-origin takes origins only, and names the one it refuses")
    func originValues() throws {
        #expect(
            try ExamBellConfiguration.platformOrigins(["HTTPS://CBT.Example", "http://127.0.0.1:9000/"]) == [
                "https://cbt.example", "http://127.0.0.1:9000",
            ])
        for bad in ["cbt.example", "ftp://cbt.example", "https://cbt.example/exam", "https://cbt.example?x=1", "https://user@cbt.example"] {
            #expect(throws: ExamBellError.self, "\(bad)") { try ExamBellConfiguration.platformOrigins([bad]) }
            do {
                _ = try ExamBellConfiguration.platformOrigins([bad])
            } catch {
                #expect(error.message.contains(bad))
            }
        }
    }

    @Test("the clock offset a page reports with its lock shows on the delivery and the roster, and final sync keeps it in the DB")
    func clockOffset() async throws {
        let test = try await node()
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let ids = try await client.makeExam("e1", candidates: 2)
            let tokens = try await client.tokens("e1", role: "candidate", ids: ids)
            // One page's device runs 5 minutes fast (the server's clock less its own: -300,000 ms);
            // the other page reports no offset (an older page).
            let fast = TestBrowser(port: port, token: tokens[0]) { text in
                text.contains(#""type":"exam_end""#) ? [#"{"type":"locked","examId":"e1","clockOffsetMs":-300004,"rttMs":9}"#] : []
            }
            let plain = TestBrowser(port: port, token: tokens[1], reply: ExamDayTests.page)
            await eventually("connected") { test.node.hub.connectionCount == 2 }
            _ = try await client.end("e1")
            try await eventually("both locked") {
                let delivery = try decode(DeliveryBody.self, try await client.call(.get, "/api/exams/e1/delivery"))
                return delivery.counts["locked"] == 2
            }
            let delivery = try decode(DeliveryBody.self, try await client.call(.get, "/api/exams/e1/delivery"))
            #expect(delivery.candidates.map(\.clockOffsetMs) == [-300_004, nil])
            #expect(String(buffer: try await client.call(.get, "/api/exams/e1/delivery").body).contains(#""clockOffsetMs":null"#))
            let roster = String(buffer: try await client.call(.get, "/api/exams/e1/roster").body)
            #expect(roster.contains(#""clockOffsetMs":-300004"#))

            _ = await test.node.finalSync.reconcile(examId: "e1")
            let stored = try await test.backends.store.candidates(examId: "e1")
            #expect(stored.map(\.clockOffsetMs) == [-300_004, nil])
            // Recorded once: a later report does not move it.
            #expect(try await test.backends.store.recordClockOffsets(["e1-c1": 5]) == 0)
            fast.close()
            plain.close()
        }
    }
}

private struct DeliveryBody: Decodable {
    struct Entry: Decodable {
        var candidateId: String
        var clockOffsetMs: Int?
    }

    var counts: [String: Int]
    var candidates: [Entry]
}
