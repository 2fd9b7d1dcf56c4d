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

/// Webhooks (issue 26, DESIGN "Platform integration"): a real HTTP receiver on loopback gets
/// signed events from the DB's webhook outbox, retried, in order, never lost.
@Suite("Webhooks", .timeLimit(.minutes(10)))
struct WebhookTests {
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
        try await PostgresTestDatabase.withFreshStore { store in
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

}
