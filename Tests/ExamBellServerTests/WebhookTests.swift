import ExamBellCore
import ExamBellSQL
import ExamBellServer
import ExamBellTestSupport
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

/// Webhooks (issue 26, DESIGN "Platform integration"): a real HTTP receiver on loopback gets
/// signed events from the DB's webhook outbox, retried, in order, never lost.
@Suite("Webhooks", .timeLimit(.minutes(10)))
struct WebhookTests {
    /// A receiver on a loopback port: records every request; answers as `answer` says.
    final class Receiver: Sendable {
        struct Heard: Sendable {
            var eventId: String?
            var signature: String?
            var body: String
        }

        final class Log: Sendable {
            let list = Mutex<[Heard]>([])
        }

        let port: Int
        private let heard = Log()
        private let group: ServiceGroup
        private let task: Task<Void, any Error>

        /// `answer(n)` is the status of the n-th request (0-based); `delay` holds each answer.
        init(
            port: Int? = nil, delay: Duration = .zero, location: String? = nil,
            answer: @escaping @Sendable (Int) -> HTTPResponse.Status = { _ in .ok }
        ) async throws {
            let heard = self.heard
            let router = Router()
            router.post("**") { request, _ -> Response in
                let body = String(buffer: try await request.body.collect(upTo: 1 << 20))
                let index = heard.list.withLock { list in
                    list.append(
                        Heard(
                            eventId: request.headers[HTTPField.Name("ExamBell-Event-Id")!],
                            signature: request.headers[HTTPField.Name("ExamBell-Signature")!], body: body
                        )
                    )
                    return list.count - 1
                }
                if delay > .zero { try await Task.sleep(for: delay) }
                var headers = HTTPFields()
                if let location { headers[.location] = location }
                return Response(
                    status: answer(index), headers: headers, body: .init(byteBuffer: ByteBuffer(string: String(repeating: "x", count: 5000))))
            }
            let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
            var logger = Logger(label: "receiver")
            logger.logLevel = .critical
            let app = Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: port ?? 0)),
                onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: logger
            )
            let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
            self.group = group
            self.task = Task { try await group.run() }
            var iterator = stream.makeAsyncIterator()
            self.port = await iterator.next() ?? 0
        }

        var url: String { "http://127.0.0.1:\(port)/hooks" }
        var requests: [Heard] { heard.list.withLock { $0 } }

        /// The bodies' parsed JSON, in arrival order.
        var events: [[String: Any]] {
            requests.compactMap { try? JSONSerialization.jsonObject(with: Data($0.body.utf8)) as? [String: Any] }
        }

        func stop() async {
            await group.triggerGracefulShutdown()
            _ = await task.result
        }
    }

    struct Registered: Decodable {
        var webhookId: String
        var url: String
        var events: [String]
        var secret: String
    }

    struct Deliveries: Decodable {
        struct Delivery: Decodable {
            var eventId: String
            var type: String
            var attempts: Int
            var lastStatus: Int?
            var deliveredAt: String?
        }
        var deliveries: [Delivery]
    }

    static func register(_ client: some TestClientProtocol, url: String, events: [String]) async throws -> Registered {
        let list = events.map { "\"\($0)\"" }.joined(separator: ",")
        let response = try await client.call(.post, "/api/webhooks", json: #"{"url":"\#(url)","events":[\#(list)]}"#)
        #expect(response.status == .created, "\(String(buffer: response.body))")
        return try decode(Registered.self, response)
    }

    static let allTypes = WebhookEventType.allCases.map(\.rawValue)

    @Test(
        "events are signed, shaped as DESIGN says and in order: a time change, a hand-in, an operator's end of one, the exam's end",
        arguments: TestNode.engines)
    func signedAndShaped(_ engines: String) async throws {
        try await TestNode.on(engines, answerGraceSeconds: 1) { test in
            let receiver = try await Receiver()
            try await test.node.application.test(.live) { client in
                let hook = try await Self.register(client, url: receiver.url, events: Self.allTypes)
                #expect(hook.secret.hasPrefix("whsec_") && hook.events == Self.allTypes)
                let listed = String(buffer: try await client.call(.get, "/api/webhooks").body)
                #expect(listed.contains(hook.webhookId) && !listed.contains(hook.secret), "the secret is shown only once")

                let ids = try await client.makeExam("w1", candidates: 3)
                #expect(
                    try await client.call(.post, "/api/exams/w1/time", json: #"{"addMinutes":10,"candidateIds":["w1-c1"],"reason":"accommodation"}"#)
                        .status == .badRequest, "no planned end yet")
                #expect(
                    try await client.call(.post, "/api/exams/w1/time", json: #"{"scheduledEndDatetime":"2099-01-01T00:00:00Z","reason":"set"}"#)
                        .status == .ok)
                let token = try await client.tokens("w1", role: "candidate", ids: [ids[0]])[0]
                var handIn = TestNode.admin
                handIn[.authorization] = "Bearer \(token)"
                #expect(try await client.call(.post, "/api/hand-in", headers: handIn).status == .ok)
                #expect(try await client.call(.post, "/api/exams/w1/candidates/\(ids[1])/end", json: #"{"reason":"ill"}"#).status == .ok)
                let end = try await client.end("w1", reason: "done")

                try await eventually("five events received", within: .seconds(30)) { receiver.requests.count >= 5 }
                let events = receiver.events
                #expect(
                    events.map { $0["type"] as? String } == [
                        "exam.time_changed", "candidate.ended", "candidate.ended", "exam.ended", "exam.delivery_complete",
                    ])
                for request in receiver.requests {
                    #expect(throws: Never.self) {
                        try WebhookSignature.verify(
                            header: request.signature, body: request.body, secret: hook.secret, now: Int64(Date().timeIntervalSince1970))
                    }
                    let body = try #require(try JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: Any])
                    #expect(body["eventId"] as? String == request.eventId)
                    #expect(Set(body.keys) == ["eventId", "type", "createdAt", "data"])
                }
                let data = events.compactMap { $0["data"] as? [String: Any] }
                #expect(data[0]["scheduledEndDatetime"] as? String == "2099-01-01T00:00:00Z" && data[0]["candidateIds"] is NSNull)
                #expect(data[0]["reason"] as? String == "set" && data[0]["actor"] as? String == "admin")
                #expect(data[1]["candidateId"] as? String == ids[0] && data[1]["endedBy"] as? String == "hand_in")
                #expect(data[2]["candidateId"] as? String == ids[1] && data[2]["endedBy"] as? String == "operator")
                #expect(data[3]["endDatetime"] as? String == end.endDatetime && data[3]["reason"] as? String == "done")
                #expect(data[3]["examId"] as? String == "w1" && data[3]["actor"] as? String == "admin")
                let counts = try #require(data[4]["counts"] as? [String: Int])
                #expect(counts["candidates"] == 3 && counts["saved"] == 0)
                #expect(data[4]["missing"] as? [String] == ids.sorted(), "nobody locked or saved; the 1 s grace ran out")

                let deliveries = try decode(Deliveries.self, try await client.call(.get, "/api/webhooks/\(hook.webhookId)/deliveries"))
                #expect(deliveries.deliveries.count == 5)
                // Each delivered with a 200; an attempt that failed before the receiver read it (seen
                // once with three test suites sharing two cores) is retried, which the receiver's
                // list above shows was never a second copy.
                #expect(deliveries.deliveries.allSatisfy { $0.attempts >= 1 && $0.lastStatus == 200 && $0.deliveredAt != nil })
            }
            await receiver.stop()
        }
    }

    @Test("an endpoint that answers 500 twice, then 200, gets the event three times with one eventId; the console can send it again")
    func retriedWithOneEventId() async throws {
        let receiver = try await Receiver { $0 < 2 ? .internalServerError : .ok }
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let hook = try await Self.register(client, url: receiver.url, events: ["exam.ended"])
            _ = try await client.makeExam("r1", candidates: 1)
            _ = try await client.end("r1")
            try await eventually("three attempts", within: .seconds(40)) { receiver.requests.count >= 3 }
            let ids = Set(receiver.requests.map(\.eventId))
            #expect(ids.count == 1 && receiver.requests.count == 3)
            try await eventually("the third attempt recorded") {
                let list = try decode(Deliveries.self, try await client.call(.get, "/api/webhooks/\(hook.webhookId)/deliveries"))
                return list.deliveries.first.map { $0.attempts == 3 && $0.lastStatus == 200 && $0.deliveredAt != nil } ?? false
            }
            let eventId = try #require(ids.first ?? nil)
            let resent = try await client.call(.post, "/api/webhooks/\(hook.webhookId)/deliveries/\(eventId)/resend")
            #expect(resent.status == .accepted)
            try await eventually("sent again") { receiver.requests.count == 4 }
            #expect(receiver.requests.last?.eventId == eventId)
            #expect(try await client.call(.post, "/api/webhooks/\(hook.webhookId)/deliveries/evt_nope/resend").status == .notFound)
        }
        await receiver.stop()
    }

    @Test("a receiver down for a while (refusing connections, then answering 503) gets the backlog in order once it is back")
    func backlogInOrder() async throws {
        let port = try RedisTestServer.freePort()
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let hook = try await Self.register(client, url: "http://127.0.0.1:\(port)/hooks", events: ["exam.time_changed", "exam.ended"])
            _ = try await client.makeExam("b1", candidates: 1)
            for minute in 1...4 {
                let at = "2099-01-01T00:0\(minute):00Z"
                #expect(
                    try await client.call(.post, "/api/exams/b1/time", json: #"{"scheduledEndDatetime":"\#(at)","reason":"r\#(minute)"}"#).status
                        == .ok)
            }
            _ = try await client.end("b1")
            try await Task.sleep(for: .seconds(1))  // nothing listens: the first attempt waits for a connection
            // Back, but still answering 503 for two seconds: the first attempts fail.
            let upAt = ContinuousClock.now + .seconds(2)
            let receiver = try await Receiver(port: port) { _ in ContinuousClock.now < upAt ? .serviceUnavailable : .ok }
            try await eventually("the backlog delivered", within: .seconds(40)) {
                let list = try decode(Deliveries.self, try await client.call(.get, "/api/webhooks/\(hook.webhookId)/deliveries"))
                return list.deliveries.count == 5 && list.deliveries.allSatisfy { $0.deliveredAt != nil }
            }
            let data = receiver.requests.suffix(5).compactMap { try? JSONSerialization.jsonObject(with: Data($0.body.utf8)) as? [String: Any] }
                .compactMap { $0["data"] as? [String: Any] }
            #expect(
                data.map { ($0["scheduledEndDatetime"] as? String) ?? "end" }
                    == ["2099-01-01T00:01:00Z", "2099-01-01T00:02:00Z", "2099-01-01T00:03:00Z", "2099-01-01T00:04:00Z", "end"],
                "the last five requests are the five events, in order"
            )
            let failed = receiver.requests.dropLast(5)
            #expect(!failed.isEmpty && Set(failed.map(\.eventId)).count == 1, "only the first in line was tried while it failed")
            let first = try decode(Deliveries.self, try await client.call(.get, "/api/webhooks/\(hook.webhookId)/deliveries")).deliveries.last
            #expect((first?.attempts ?? 0) >= 2, "the first event failed while the receiver was down: \(String(describing: first))")
            await receiver.stop()
        }
    }

    @Test("bad registrations get a clear 4xx and change nothing; --webhook-allow narrows targets")
    func badInput() async throws {
        let test = try await TestNode { $0.webhookTargets = WebhookTargets(allowed: [CIDR("10.0.0.0/8")!]) }
        try await test.node.application.test(.router) { client in
            let cases: [(String, HTTPResponse.Status, String)] = [
                (#"{"url":"ftp://10.0.0.1/x","events":["exam.ended"]}"#, .badRequest, "invalid_url"),
                (#"{"url":"not a url","events":["exam.ended"]}"#, .badRequest, "invalid_url"),
                (#"{"url":"http://user:pw@10.0.0.1/x","events":["exam.ended"]}"#, .badRequest, "invalid_url"),
                (#"{"url":"http://169.254.169.254/latest","events":["exam.ended"]}"#, .badRequest, "webhook_target_refused"),
                (#"{"url":"http://[fe80::1]/x","events":["exam.ended"]}"#, .badRequest, "webhook_target_refused"),
                (#"{"url":"http://127.0.0.1:9/x","events":["exam.ended"]}"#, .badRequest, "webhook_target_refused"),
                (#"{"url":"http://10.0.0.1/x","events":["exam.started"]}"#, .badRequest, "unknown_event_type"),
                (#"{"url":"http://10.0.0.1/x","events":[]}"#, .badRequest, "events_required"),
                (#"{"url":"http://10.0.0.1/x"}"#, .badRequest, "invalid_json"),
                (#"{"url":"http://10.0.0.1/\#(String(repeating: "a", count: 3000))","events":["exam.ended"]}"#, .badRequest, "invalid_url"),
            ]
            for (body, status, code) in cases {
                let response = try await client.call(.post, "/api/webhooks", json: body)
                #expect(response.status == status, "\(body.prefix(80))")
                #expect(String(buffer: response.body).contains(code), "\(body.prefix(80)): \(String(buffer: response.body))")
            }
            #expect(String(buffer: try await client.call(.get, "/api/webhooks").body) == #"{"webhooks":[]}"#)
            let ok = try await client.call(.post, "/api/webhooks", json: #"{"url":"http://10.1.2.3:8080/x","events":["exam.ended"]}"#)
            #expect(ok.status == .created)
            #expect(try await client.call(.delete, "/api/webhooks/wh_unknown").status == .notFound)
            #expect(try await client.call(.get, "/api/webhooks/wh_unknown/deliveries").status == .notFound)
            var anonymous = TestNode.admin
            anonymous[.authorization] = nil
            #expect(try await client.call(.get, "/api/webhooks", headers: anonymous).status == .unauthorized)
            let id = try decode(Registered.self, ok).webhookId
            #expect(try await client.call(.delete, "/api/webhooks/\(id)").status == .noContent)
            #expect(String(buffer: try await client.call(.get, "/api/webhooks").body) == #"{"webhooks":[]}"#)
        }
    }

    @Test("1,000 candidates handing in one by one produce 1,000 candidate.ended events, none lost, none twice")
    func thousandCandidates() async throws {
        let receiver = try await Receiver()
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            _ = try await Self.register(client, url: receiver.url, events: ["candidate.ended"])
            let created = try await client.call(.post, "/api/exams", json: #"{"examId":"k1","title":"Thousand"}"#)
            #expect(created.status == .created)
            let ids = (1...1000).map { "k1-c\($0)" }
            for chunk in stride(from: 0, to: ids.count, by: 500).map({ Array(ids[$0..<min($0 + 500, ids.count)]) }) {
                let people = chunk.map { #"{"candidateId":"\#($0)","name":"\#($0)"}"# }.joined(separator: ",")
                #expect(try await client.call(.post, "/api/exams/k1/candidates", json: #"{"candidates":[\#(people)]}"#).status == .ok)
            }
            #expect(try await client.call(.post, "/api/exams/k1/start").status == .ok)
            var tokens: [String] = []
            for chunk in stride(from: 0, to: ids.count, by: 500).map({ Array(ids[$0..<min($0 + 500, ids.count)]) }) {
                tokens += try await client.tokens("k1", role: "candidate", ids: chunk)
            }
            for token in tokens {
                var headers = TestNode.admin
                headers[.authorization] = "Bearer \(token)"
                #expect(try await client.call(.post, "/api/hand-in", headers: headers).status == .ok)
            }
            try await eventually("1,000 events", within: .seconds(120)) { Set(receiver.requests.compactMap(\.eventId)).count >= 1000 }
            let candidates = receiver.events.compactMap { ($0["data"] as? [String: Any])?["candidateId"] as? String }
            #expect(Set(candidates) == Set(ids))
            #expect(Set(receiver.requests.compactMap(\.eventId)).count == 1000)
        }
        await receiver.stop()
    }

    @Test("two web nodes on one database never make one attempt at once: each event reaches a slow receiver once")
    func twoNodesOneAttempt() async throws {
        let receiver = try await Receiver(delay: .milliseconds(300))
        let store = try await PostgresTestDatabase.freshStore()
        let first = try await TestNode(store: store)
        let second = try await TestNode(store: store, nodeId: "socket-2")
        try await first.node.application.test(.live) { client in
            try await second.node.application.test(.live) { _ in
                _ = try await Self.register(client, url: receiver.url, events: ["candidate.ended"])
                let ids = try await client.makeExam("t1", candidates: 20)
                for id in ids {
                    #expect(try await client.call(.post, "/api/exams/t1/candidates/\(id)/end", json: #"{"reason":"x"}"#).status == .ok)
                }
                try await eventually("20 events", within: .seconds(60)) { Set(receiver.requests.compactMap(\.eventId)).count >= 20 }
                try await Task.sleep(for: .seconds(1))
                #expect(receiver.requests.count == 20, "an event was sent twice: \(receiver.requests.count) requests")
            }
        }
        await receiver.stop()
    }

    /// Calls a node's API over HTTP with the admin token.
    static func api(_ port: Int, _ method: String, _ path: String, _ body: String? = nil, token: String) async throws -> (Int, String) {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.httpMethod = method
        request.timeoutInterval = 30
        request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        if let body {
            request.httpBody = Data(body.utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    static func healthy(_ port: Int) async throws {
        try await waitHealthy(port: port, "a webhook test's node")
    }

    @Test(
        "a node SIGKILLed right after an end commits delivers exam.ended after its restart; exambell webhook listen prints it, and refuses a wrong secret"
    )
    func killedAfterCommit() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("exambell-webhooks-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let token = "webhook-test-admin-token"
        let port = try RedisTestServer.freePort()
        let node = TestProcess(
            arguments: [
                try TestProcess.exambellBinary(), "serve", "--port", String(port), "--data-dir", directory.appendingPathComponent("data").path,
                "--admin-token", token,
            ],
            environment: ["EXAMBELL_TEST_FAULT": "after-commit@\(directory.appendingPathComponent("crashed").path)"],
            logPath: directory.appendingPathComponent("serve.log").path
        )
        try node.start()
        defer { node.stop() }
        try await Self.healthy(port)
        let (rightPort, wrongPort) = (try RedisTestServer.freePort(), try RedisTestServer.freePort())
        var secrets: [String] = []
        var hookIds: [String] = []
        for listener in [rightPort, wrongPort] {
            let (status, body) = try await Self.api(
                port, "POST", "/api/webhooks", #"{"url":"http://127.0.0.1:\#(listener)/exambell","events":["exam.ended"]}"#, token: token)
            #expect(status == 201, "\(body)")
            let registered = try JSONDecoder().decode(Registered.self, from: Data(body.utf8))
            secrets.append(registered.secret)
            hookIds.append(registered.webhookId)
        }
        #expect(!node.log.contains(secrets[0]), "no secret in a log line")
        func listen(_ port: Int, secret: String, _ name: String) throws -> TestProcess {
            let process = TestProcess(
                arguments: [try TestProcess.exambellBinary(), "webhook", "listen", "--port", String(port)],
                environment: ["EXAMBELL_WEBHOOK_SECRET": secret], logPath: directory.appendingPathComponent("\(name).log").path
            )
            try process.start()
            return process
        }
        let right = try listen(rightPort, secret: secrets[0], "right")
        defer { right.stop() }
        let wrong = try listen(wrongPort, secret: secrets[0] + "x", "wrong")
        defer { wrong.stop() }
        try await eventually("listeners up") { right.log.contains("listening") && wrong.log.contains("listening") }

        #expect(try await Self.api(port, "POST", "/api/exams", #"{"examId":"s1","title":"Crash"}"#, token: token).0 == 201)
        #expect(
            try await Self.api(port, "POST", "/api/exams/s1/candidates", #"{"candidates":[{"candidateId":"s1-c1","name":"C"}]}"#, token: token).0
                == 200)
        #expect(try await Self.api(port, "POST", "/api/exams/s1/start", token: token).0 == 200)
        // The node commits the end and dies before answering (or telling anyone).
        await #expect(throws: (any Error).self) { try await Self.api(port, "POST", "/api/exams/s1/end", #"{"reason":"crash"}"#, token: token) }
        #expect(await node.exitStatus(within: .seconds(30)) == 128 + SIGKILL)
        #expect(!right.log.contains("exam.ended"), "nothing was sent before the crash")

        try node.start()
        try await Self.healthy(port)
        try await eventually("exam.ended printed by the listener", within: .seconds(30)) { right.log.contains(#""type":"exam.ended""#) }
        let line = try #require(right.log.split(separator: "\n").first { $0.contains(#""type":"exam.ended""#) })
        let event = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect((event["data"] as? [String: Any])?["examId"] as? String == "s1")
        #expect((event["data"] as? [String: Any])?["reason"] as? String == "crash")
        try await eventually("the wrong secret refused") { wrong.log.contains("does not match") }
        #expect(!wrong.log.contains(#""type":"exam.ended""#))
        let (_, hooks) = try await Self.api(port, "GET", "/api/webhooks", token: token)
        let listed = try JSONDecoder().decode([String: [WebhookView]].self, from: Data(hooks.utf8))["webhooks"]?.map(\.webhookId) ?? []
        #expect(Set(listed) == Set(hookIds))
        try await eventually("the refusal recorded: 401, not delivered") {
            let (_, deliveries) = try await Self.api(port, "GET", "/api/webhooks/\(hookIds[1])/deliveries", token: token)
            let refused = try JSONDecoder().decode(Deliveries.self, from: Data(deliveries.utf8)).deliveries.first
            return refused?.lastStatus == 401 && refused?.deliveredAt == nil
        }
    }

    struct WebhookView: Decodable {
        var webhookId: String
    }

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
        let redis = engines.contains("Redis") ? try await RedisTestServer.start() : nil
        defer { redis?.stop() }
        let store: (any ExamStore)? = redis == nil ? nil : try await PostgresTestDatabase.freshStore()
        let test = try await TestNode(store: store, redisURL: redis?.url) {
            $0.budgets.webhookEndpoints = 5
            $0.budgets.webhookCalls = Rate(burst: 25, perMinute: 25)
        }
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
