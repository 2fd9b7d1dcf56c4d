import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellRuntime
import ExamBellSQL
import ExamBellServer
import ExamBellSocket
import ExamBellTestSupport
import ExamBellWeb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Signatures, targets, retry times, slow and redirecting endpoints.
extension WebhookTests {
    @Test("signatures: a good one holds; a wrong secret, a changed body, an old time, a missing or malformed header each fail, named")
    func signatureChecks() throws {
        let body = #"{"eventId":"evt_1","type":"exam.ended","createdAt":"2030-01-01T00:00:00Z","data":{}}"#
        let now: Int64 = 1_900_000_000
        let header = WebhookSignature.sign(body: body, secret: "whsec_a", time: now)
        #expect(header.hasPrefix("t=1900000000,v1=") && header.count == "t=1900000000,v1=".count + 64)
        try WebhookSignature.verify(header: header, body: body, secret: "whsec_a", now: now + 10)
        #expect(throws: WebhookSignature.Failure.mismatch) { try WebhookSignature.verify(header: header, body: body, secret: "whsec_b", now: now) }
        #expect(throws: WebhookSignature.Failure.mismatch) {
            try WebhookSignature.verify(header: header, body: body + " ", secret: "whsec_a", now: now)
        }
        #expect(throws: WebhookSignature.Failure.stale(seconds: 301)) {
            try WebhookSignature.verify(header: header, body: body, secret: "whsec_a", now: now + 301)
        }
        #expect(throws: WebhookSignature.Failure.missing) { try WebhookSignature.verify(header: nil, body: body, secret: "whsec_a", now: now) }
        #expect(throws: WebhookSignature.Failure.malformed) { try WebhookSignature.verify(header: "v1=abc", body: body, secret: "whsec_a", now: now) }
        #expect(WebhookSignature.newSecret() != WebhookSignature.newSecret())
    }

    @Test("targets: link-local and metadata addresses always refused, --webhook-allow narrows, bad CIDRs named")
    func targetPolicy() throws {
        let open = WebhookTargets()
        func address(_ ip: String) throws -> SocketAddress { try SocketAddress(ipAddress: ip, port: 80) }
        #expect(open.refusal([try address("169.254.169.254")]) != nil)
        #expect(open.refusal([try address("fe80::1")]) != nil)
        #expect(open.refusal([try address("fd00:ec2::254")]) != nil)
        #expect(open.refusal([try address("::ffff:169.254.169.254")]) != nil, "an IPv4-mapped address counts as its IPv4")
        #expect(open.refusal([try address("127.0.0.1"), try address("203.0.113.7")]) == nil)
        let narrow = WebhookTargets(allowed: try WebhookTargets.parseAllowed(["10.0.0.0/8,192.168.1.0/24", "fd00::/8"]))
        #expect(narrow.refusal([try address("10.200.3.4")]) == nil)
        #expect(narrow.refusal([try address("192.168.1.77")]) == nil)
        #expect(narrow.refusal([try address("192.168.2.1")]) != nil)
        #expect(narrow.refusal([try address("fd12::1")]) == nil)
        #expect(narrow.refusal([try address("10.0.0.1"), try address("8.8.8.8")]) != nil, "every address of a name must be allowed")
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.0/x", "::/129"] {
            #expect(throws: ExamBellError.self, "\(bad)") { try WebhookTargets.parseAllowed([bad]) }
        }
    }

    @Test("retries: the first within 5 s, then doubling up to 10 minutes, until the retry window after the event ends")
    func retrySchedule() {
        let retry = WebhookRetry(retryFor: .seconds(24 * 3600))
        let created = Timestamp(secondsSince1970: 1_900_000_000)
        let now = created.secondsSince1970 * 1000
        #expect(WebhookRetry.ceilingMs(afterAttempt: 1) == 5_000)
        #expect(WebhookRetry.ceilingMs(afterAttempt: 2) == 10_000)
        #expect(WebhookRetry.ceilingMs(afterAttempt: 8) == 600_000)
        #expect(WebhookRetry.ceilingMs(afterAttempt: 1000) == 600_000)
        for _ in 0..<100 {
            let next = retry.next(afterAttempt: 1, createdAt: created, nowMs: now)
            #expect(next.map { $0 - now >= 2_500 && $0 - now <= 5_000 } == true)
        }
        #expect(retry.next(afterAttempt: 300, createdAt: created, nowMs: now + 24 * 3_600_000 - 1) != nil)
        #expect(retry.next(afterAttempt: 300, createdAt: created, nowMs: now + 24 * 3_600_000) == nil, "given up after 24 h")
    }

    @Test("a slow endpoint holds neither an end, another exam's events, nor another endpoint")
    func slowEndpointHoldsNothing() async throws {
        let slow = try await Receiver(delay: .seconds(8))
        let fast = try await Receiver()
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            _ = try await Self.register(client, url: slow.url, events: ["exam.ended"])
            _ = try await Self.register(client, url: fast.url, events: ["exam.ended"])
            for exam in ["s1", "s2", "s3"] { _ = try await client.makeExam(exam, candidates: 1) }
            _ = try await client.end("s1")
            try await eventually("the slow endpoint holds s1's event") { slow.requests.count == 1 }
            // While it holds it: ends answer, and the fast endpoint hears every exam.
            _ = try await client.end("s2")
            _ = try await client.end("s3")
            try await eventually("the fast endpoint heard all three", within: .seconds(5)) { fast.requests.count == 3 }
            try await eventually("the slow endpoint hears the other exams too (not behind s1)", within: .seconds(5)) { slow.requests.count == 3 }
        }
        await slow.stop()
        await fast.stop()
    }

    struct FullDeliveries: Decodable {
        struct Delivery: Decodable {
            var attempts: Int
            var lastStatus: Int?
            var lastError: String?
            var lastResponse: String?
            var deliveredAt: String?
        }
        var deliveries: [Delivery]
    }

    @Test("an attempt follows no redirect, is given up after 10 s without an answer, and keeps 1 KiB of the answer")
    func attemptLimits() async throws {
        let elsewhere = try await Receiver()
        let redirecting = try await Receiver(location: elsewhere.url) { _ in .found }
        let silent = try await Receiver(delay: .seconds(15))
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let moved = try await Self.register(client, url: redirecting.url, events: ["exam.ended"])
            let slow = try await Self.register(client, url: silent.url, events: ["exam.ended"])
            _ = try await client.makeExam("l1", candidates: 1)
            _ = try await client.end("l1")
            func first(_ hook: Registered) async throws -> FullDeliveries.Delivery? {
                try decode(FullDeliveries.self, try await client.call(.get, "/api/webhooks/\(hook.webhookId)/deliveries")).deliveries.first
            }
            try await eventually("the redirect recorded", within: .seconds(20)) { try await first(moved)?.attempts ?? 0 >= 1 }
            let redirected = try #require(try await first(moved))
            #expect(redirected.lastStatus == 302 && redirected.deliveredAt == nil, "a 3xx is not delivered")
            #expect(redirected.lastResponse?.utf8.count == 1024, "1 KiB of a 5,000-byte answer kept")
            #expect(elsewhere.requests.isEmpty, "the redirect was not followed")
            try await eventually("the silent endpoint's attempt given up at its limit", within: .seconds(30)) {
                try await first(slow)?.attempts ?? 0 >= 1
            }
            let unanswered = try #require(try await first(slow))
            #expect(unanswered.lastStatus == nil && unanswered.lastError == "no answer within 10 s", "\(String(describing: unanswered.lastError))")
        }
        await redirecting.stop()
        await elsewhere.stop()
        await silent.stop()
    }

    @Test(
        "endpoints are budgeted atomically: 20 registrations at once against a budget of 5 make exactly 5; resends are rate-limited per operator",
        arguments: TestNode.engines)
    func endpointBudget(_ engines: String) async throws {
        let budgets: (inout ExamBellConfiguration) -> Void = {
            $0.budgets.webhookEndpoints = 5
            $0.budgets.webhookCalls = Rate(burst: 25, perMinute: 25)
        }
        try await TestNode.on(engines, configure: budgets) { test in
            try await test.node.application.test(.live) { client in
                let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                    for n in 0..<20 {
                        group.addTask {
                            try await client.call(.post, "/api/webhooks", json: #"{"url":"http://127.0.0.1:9/\#(n)","events":["exam.ended"]}"#).status
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(statuses.filter { $0 == .created }.count == 5, "\(statuses)")
                #expect(statuses.filter { $0 == .tooManyRequests }.count == 15)
                let listed = try decode([String: [WebhookView]].self, try await client.call(.get, "/api/webhooks"))["webhooks"] ?? []
                #expect(listed.count == 5)
                // 20 registrations spent 20 of the operator's 25: five more calls, then 429.
                var answers: [HTTPResponse.Status] = []
                for _ in 0..<6 {
                    answers.append(try await client.call(.post, "/api/webhooks/\(listed[0].webhookId)/deliveries/evt_x/resend").status)
                }
                #expect(answers == Array(repeating: .notFound, count: 5) + [.tooManyRequests], "\(answers)")
            }
        }
    }
}
