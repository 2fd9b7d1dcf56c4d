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
import Testing

/// Named operators (DESIGN "Operators"): login with a session cookie and CSRF token, roles
/// and their refusals, API tokens, disabling, throttled guesses, audit rows that name who.
/// In turn: every test hashes passwords (bcrypt, ~0.25 s of CPU each) on the one pool of
/// the process, and run at once on a loaded machine their logins waited for each other
/// past the test client's 20 s.
@Suite("Operators", .serialized, .timeLimit(.minutes(10)))
struct OperatorsTests {
    static let csrf = HTTPField.Name("X-CSRF-Token")!

    /// A logged-in console: the cookie and CSRF token of one operator.
    struct Console {
        var cookie: String
        var csrfToken: String
        var name: String

        /// Headers of a call made by the console page (`withCSRF` for state-changing calls).
        func headers(withCSRF: Bool = true) -> HTTPFields {
            var fields: HTTPFields = [.cookie: "\(OperatorsTests.cookieName)=\(cookie)", .contentType: "application/json"]
            if withCSRF { fields[OperatorsTests.csrf] = csrfToken }
            return fields
        }
    }

    static let cookieName = "exambell_session"
    static let password = "correct horse battery"

    static func addOperator(_ client: some TestClientProtocol, _ name: String, role: String) async throws {
        let response = try await client.call(
            .post, "/api/operators", json: #"{"name":"\#(name)","password":"\#(password)","role":"\#(role)"}"#
        )
        #expect(response.status == .created, "adding \(name): \(String(buffer: response.body))")
    }

    /// One POST /api/login, whatever it answers.
    static func tryLogin(_ client: some TestClientProtocol, _ name: String, password: String = password) async throws -> TestResponse {
        try await client.call(
            .post, "/api/login", json: #"{"name":"\#(name)","password":"\#(password)"}"#, headers: [.contentType: "application/json"]
        )
    }

    static func login(_ client: some TestClientProtocol, _ name: String, password: String = password) async throws -> Console {
        let response = try await tryLogin(client, name, password: password)
        #expect(response.status == .ok, "login of \(name): \(String(buffer: response.body))")
        let setCookie = try #require(response.headers[.setCookie])
        let value = try #require(setCookie.split(separator: ";").first?.split(separator: "=", maxSplits: 1).last)
        let me = try decode(MeBody.self, response)
        #expect(me.name == name)
        return Console(cookie: String(value), csrfToken: me.csrfToken, name: name)
    }

    @Test("the admin token adds operators; a login sets an HttpOnly, SameSite=Strict cookie; me, CSRF, logout")
    func loginSessionAndCSRF() async throws {
        let app = try await TestNode().node.application
        try await app.test(.router) { client in
            try await Self.addOperator(client, "kim", role: "operator")
            let wrong = try await Self.tryLogin(client, "kim", password: "wrong password!")
            #expect(wrong.status == .unauthorized)
            #expect(wrong.headers[.setCookie] == nil)
            let unknown = try await Self.tryLogin(client, "nobody")
            #expect(unknown.status == .unauthorized)

            let raw = try await Self.tryLogin(client, "kim")
            let setCookie = try #require(raw.headers[.setCookie])
            #expect(setCookie.hasPrefix("exambell_session="))
            for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
                #expect(setCookie.contains(attribute), "cookie lacks \(attribute): \(setCookie)")
            }
            #expect(!setCookie.contains("Secure"), "http:// public URL: no Secure flag")
            #expect(raw.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")

            let console = try await Self.login(client, "kim")
            let me = try await client.call(.get, "/api/me", headers: console.headers(withCSRF: false))
            #expect(String(buffer: me.body).contains(#""role":"operator""#))
            #expect(String(buffer: me.body).contains(console.csrfToken), "a reload gets its CSRF token back")

            // A state-changing call needs the CSRF token; reading does not.
            let create = #"{"examId":"e1","title":"Math"}"#
            let noCSRF = try await client.call(.post, "/api/exams", json: create, headers: console.headers(withCSRF: false))
            #expect(noCSRF.status == .forbidden)
            #expect(try decode(ErrorBody.self, noCSRF).error.code == "csrf_failed")
            var badCSRF = console.headers()
            badCSRF[Self.csrf] = "forged"
            #expect(try await client.call(.post, "/api/exams", json: create, headers: badCSRF).status == .forbidden)
            #expect(try await client.call(.get, "/api/exams/e1", headers: TestNode.admin).status == .notFound, "refused calls made nothing")
            #expect(try await client.call(.post, "/api/exams", json: create, headers: console.headers()).status == .created)
            #expect(try await client.call(.get, "/api/exams", headers: console.headers(withCSRF: false)).status == .ok)

            // Logout ends the session everywhere it is presented.
            let out = try await client.call(.post, "/api/logout", headers: console.headers())
            #expect(out.status == .ok)
            #expect(out.headers[.setCookie]?.contains("Max-Age=0") == true)
            #expect(try await client.call(.get, "/api/me", headers: console.headers(withCSRF: false)).status == .unauthorized)
        }
    }

    @Test("each role is refused what it may not do, with 403 forbidden, and the refusal changes nothing")
    func roleRefusals() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.router) { client in
            try await Self.addOperator(client, "op", role: "operator")
            try await Self.addOperator(client, "watcher", role: "viewer")
            _ = try await client.makeExam("e1", candidates: 2, proctors: 1)
            let viewer = try await Self.login(client, "watcher")
            let op = try await Self.login(client, "op")

            func expectForbidden(_ method: HTTPRequest.Method, _ path: String, _ json: String?, as console: Console) async throws {
                let response = try await client.call(method, path, json: json, headers: console.headers())
                #expect(response.status == .forbidden, "\(console.name) \(method) \(path): \(response.status)")
                #expect((try? decode(ErrorBody.self, response).error.code) == "forbidden", "\(method) \(path)")
            }
            // A viewer reads, and changes nothing.
            for path in ["/api/exams", "/api/exams/e1", "/api/exams/e1/roster", "/api/exams/e1/audit", "/api/exams/e1/delivery"] {
                #expect(try await client.call(.get, path, headers: viewer.headers()).status == .ok, "viewer reads \(path)")
            }
            let changes: [(HTTPRequest.Method, String, String?)] = [
                (.post, "/api/exams", #"{"examId":"e2","title":"x"}"#),
                (.post, "/api/exams/e1/candidates", #"{"candidates":[{"candidateId":"x1","name":"X"}]}"#),
                (.post, "/api/exams/e1/proctors", #"{"proctors":[{"proctorId":"x2","name":"X"}]}"#),
                (.post, "/api/exams/e1/sessions", #"{"role":"candidate","ids":["e1-c1"]}"#),
                (.post, "/api/exams/e1/time", #"{"addMinutes":10,"reason":"power cut"}"#),
                (.post, "/api/exams/e1/candidates/e1-c1/end", #"{"reason":"left"}"#),
                (.post, "/api/exams/e1/announcements", #"{"message":"hello"}"#),
                (.post, "/api/exams/e1/late-submissions/1", #"{"decision":"accept","reason":"x"}"#),
                (.post, "/api/exams/e1/end", #"{"reason":"x"}"#),
            ]
            for (method, path, json) in changes { try await expectForbidden(method, path, json, as: viewer) }
            // Managing operators is the admin's alone.
            let manage: [(HTTPRequest.Method, String, String?)] = [
                (.get, "/api/operators", nil),
                (.post, "/api/operators", #"{"name":"eve","password":"\#(Self.password)","role":"admin"}"#),
                (.post, "/api/operators/watcher/disable", nil),
            ]
            for (method, path, json) in manage {
                try await expectForbidden(method, path, json, as: viewer)
                try await expectForbidden(method, path, json, as: op)
            }
            let exam = try await client.call(.get, "/api/exams/e1")
            #expect(String(buffer: exam.body).contains(#""status":"in_progress""#))
            #expect(try await test.backends.store.candidates(examId: "e1").map(\.status) == [.inProgress, .inProgress])
            #expect(try await test.backends.store.operatorAccount(named: "eve") == nil)
            #expect(try await test.backends.store.operatorAccount(named: "watcher")?.account.disabled == false)
            #expect(try await test.backends.store.auditLog(examId: "e1").allSatisfy { $0.actor == "admin" }, "no refused call was audited")

            // An operator does the exam day; the audit log and the plan name who did it.
            #expect(
                try await client.call(.post, "/api/exams/e1/candidates/e1-c1/end", json: #"{"reason":"left"}"#, headers: op.headers()).status == .ok)
            #expect(try await client.call(.post, "/api/exams/e1/end", json: #"{"reason":"done"}"#, headers: op.headers()).status == .ok)
            #expect(try await test.backends.store.exam("e1")?.endedBy == "op")
            let actors = try await test.backends.store.auditLog(examId: "e1").map { "\($0.actor):\($0.action)" }
            #expect(actors.contains("op:end_candidate") && actors.contains("op:end") && actors.contains("admin:start"), "\(actors)")
        }
    }

    @Test("API tokens: made once, used as Bearer and audited as their operator, revoked; disabling ends sessions and tokens")
    func apiTokensAndDisabling() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.router) { client in
            try await Self.addOperator(client, "lee", role: "operator")
            let console = try await Self.login(client, "lee")
            let made = try await client.call(.post, "/api/tokens", json: #"{"label":"nightly script"}"#, headers: console.headers())
            #expect(made.status == .created)
            let token = try decode(MadeToken.self, made)
            #expect(token.token.hasPrefix("ebt_"))
            let bearer: HTTPFields = [.authorization: "Bearer \(token.token)", .contentType: "application/json"]
            _ = try await client.call(.post, "/api/exams", json: #"{"examId":"e1","title":"T"}"#, headers: bearer)
            #expect(try await test.backends.store.auditLog(examId: "e1").map(\.actor) == ["lee"])
            let listed = try await client.call(.get, "/api/tokens", headers: console.headers())
            #expect(String(buffer: listed.body).contains("nightly script"))
            #expect(!String(buffer: listed.body).contains(token.token), "a token is shown once, never listed")
            // The bootstrap admin token is no operator: it has no tokens of its own.
            #expect(try await client.call(.post, "/api/tokens", json: #"{"label":"x"}"#).status == .forbidden)
            #expect(try await client.call(.post, "/api/tokens", json: #"{"label":"  "}"#, headers: console.headers()).status == .badRequest)

            #expect(try await client.call(.delete, "/api/tokens/\(token.id)", headers: console.headers()).status == .ok)
            #expect(try await client.call(.get, "/api/exams", headers: bearer).status == .unauthorized)
            #expect(try await client.call(.delete, "/api/tokens/\(token.id)", headers: console.headers()).status == .notFound)

            let second = try decode(MadeToken.self, try await client.call(.post, "/api/tokens", json: #"{"label":"ci"}"#, headers: console.headers()))
            let disabled = try await client.call(.post, "/api/operators/lee/disable")
            #expect(disabled.status == .ok)
            #expect(String(buffer: disabled.body).contains(#""disabled":true"#))
            #expect(try await client.call(.get, "/api/exams", headers: console.headers()).status == .unauthorized, "session ended")
            let secondBearer: HTTPFields = [.authorization: "Bearer \(second.token)"]
            #expect(try await client.call(.get, "/api/exams", headers: secondBearer).status == .unauthorized, "token stopped")
            let again = try await Self.tryLogin(client, "lee")
            #expect(again.status == .unauthorized, "a disabled operator cannot log in")
            #expect(try await client.call(.post, "/api/operators/nobody/disable").status == .notFound)
        }
    }

    @Test("bad operator input is a 400, a taken name a 409, an admin cannot disable itself")
    func badInput() async throws {
        let app = try await TestNode().node.application
        try await app.test(.router) { client in
            for (json, code) in [
                (#"{"name":"bad name","password":"0123456789","role":"operator"}"#, "invalid_name"),
                (#"{"name":"ok","password":"short","role":"operator"}"#, "invalid_password"),
                (#"{"name":"ok","password":"\#(String(repeating: "한", count: 30))","role":"operator"}"#, "invalid_password"),
                (#"{"name":"ok","password":"0123456789","role":"root"}"#, "invalid_role"),
                (#"{"name":"ok"}"#, "invalid_json"),
            ] {
                let response = try await client.call(.post, "/api/operators", json: json)
                #expect(response.status == .badRequest, "\(json)")
                #expect(try decode(ErrorBody.self, response).error.code == code, "\(json)")
            }
            try await Self.addOperator(client, "boss", role: "admin")
            let taken = try await client.call(
                .post, "/api/operators", json: #"{"name":"boss","password":"\#(Self.password)","role":"viewer"}"#
            )
            #expect(taken.status == .conflict)
            let boss = try await Self.login(client, "boss")
            #expect(try await client.call(.post, "/api/operators/boss/disable", headers: boss.headers()).status == .conflict)
            #expect(try await client.call(.post, "/api/login", json: "{}", headers: [.contentType: "application/json"]).status == .badRequest)
        }
    }

    @Test("exambell operator on PostgreSQL: the pool runs in the command's task group and stops with it, so the command exits")
    func commandLineOnPostgres() async throws {
        let url = try await PostgresTestDatabase.freshDatabaseURL()
        let binary = try TestProcess.exambellBinary()
        let logPath = FileManager.default.temporaryDirectory.appendingPathComponent("exambell-operator-pg-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: logPath) }
        for (index, shell) in [
            "printf '%s\\n' '\(Self.password)' | '\(binary)' operator add kim --role admin --database '\(url)'",
            "'\(binary)' operator list --database '\(url)'",
        ].enumerated() {
            let process = TestProcess(arguments: ["/bin/sh", "-c", shell], environment: [:], logPath: logPath)
            try process.start()
            let status = await process.exitStatus(within: .seconds(60))
            if status == nil { process.stop() }
            #expect(status == 0, "command \(index) exited \(status.map(String.init) ?? "never"): \(process.log)")
            if index == 1 { #expect(process.log.contains("kim")) }
        }
    }

    @Test("exambell operator add (password on stdin), list, disable; exambell end --api-token is audited as its operator")
    func commandLine() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("exambell-operator-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let binary = try TestProcess.exambellBinary()
        @Sendable func run(_ shell: String) async throws -> (Bool, String) {
            let logPath = "\(directory)-\(UUID().uuidString).log"
            defer { try? FileManager.default.removeItem(atPath: logPath) }
            let process = TestProcess(arguments: ["/bin/sh", "-c", shell], environment: [:], logPath: logPath)
            try process.start()
            let status = await process.exitStatus(within: .seconds(60))
            return (status == 0, process.log)
        }
        let place = "--data-dir '\(directory)'"
        let added = try await run("printf '%s\\n' '\(Self.password)' | '\(binary)' operator add kim --role admin \(place)")
        #expect(added.0, "\(added.1)")
        #expect(added.1.contains("Operator kim added as admin."))
        let badRole = try await run("printf 'long enough pw\\n' | '\(binary)' operator add lee --role root \(place)")
        #expect(!badRole.0)
        #expect(badRole.1.contains("invalid_role"))
        let noPassword = try await run("'\(binary)' operator add lee --role viewer \(place) < /dev/null")
        #expect(!noPassword.0)
        #expect(noPassword.1.contains("standard input"))

        let test = try await TestNode(databasePath: "\(directory)/exambell.sqlite")
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let kim = try await Self.login(client, "kim")
            _ = try await client.makeExam("e1", candidates: 1)
            let made = try await client.call(.post, "/api/tokens", json: #"{"label":"cli"}"#, headers: kim.headers())
            let token = try decode(MadeToken.self, made).token
            let ended = try await run("'\(binary)' end e1 --reason 'from a script' --web-url http://127.0.0.1:\(port) --api-token \(token)")
            #expect(ended.0, "\(ended.1)")
            #expect(!ended.1.contains(token), "the token is never printed")
            #expect(try await test.backends.store.exam("e1")?.endedBy == "kim")

            let disabled = try await run("'\(binary)' operator disable kim \(place)")
            #expect(disabled.0, "\(disabled.1)")
            let listed = try await run("'\(binary)' operator list \(place)")
            #expect(listed.1.contains("kim\tadmin\tdisabled"), "\(listed.1)")
            #expect(try await client.call(.get, "/api/exams", headers: kim.headers()).status == .unauthorized)
            let unknown = try await run("'\(binary)' operator disable nobody \(place)")
            #expect(!unknown.0)
            #expect(unknown.1.contains("operator_not_found"))
        }
    }

    @Test("wrong logins are throttled per name, wrong bearer tokens per address: 429 even for the right secret")
    func throttling() async throws {
        let app = try await TestNode().node.application
        try await app.test(.router) { client in
            try await Self.addOperator(client, "park", role: "viewer")
            for _ in 0..<5 {
                let wrong = try await Self.tryLogin(client, "park", password: "guess guess")
                #expect(wrong.status == .unauthorized)
            }
            let locked = try await Self.tryLogin(client, "park")
            #expect(locked.status == .tooManyRequests)
            #expect(try decode(ErrorBody.self, locked).error.code == "budget_exceeded")

            var refused = 0
            for attempt in 0..<25 {
                let guess = try await client.call(.get, "/api/exams", headers: [.authorization: "Bearer guess-\(attempt)"])
                if guess.status == .tooManyRequests { refused += 1 } else { #expect(guess.status == .unauthorized) }
            }
            #expect(refused == 5, "the 21st to 25th guesses are refused unread")
            #expect(try await client.call(.get, "/api/exams").status == .tooManyRequests, "even the right token, for a while")
        }
    }
}

extension OperatorsTests {
    @Test("logins checked at once are bounded: past the line a login gets 503 busy")
    func loginLine() async throws {
        let app = try await TestNode { $0.maxLoginsChecking = 0 }.node.application
        try await app.test(.router) { client in
            try await Self.addOperator(client, "han", role: "viewer")
            for _ in 0..<6 {
                let busy = try await Self.tryLogin(client, "han", password: "guess guess")
                #expect(busy.status == .serviceUnavailable)
                #expect(try decode(ErrorBody.self, busy).error.code == "busy")
            }
        }
        // The line itself: of 200 at once from 20 addresses with 10 places, exactly 10 get
        // in; a place given back is taken again.
        let slots = Slots(limit: 10, perKey: 10)
        let admitted = await withTaskGroup(of: String?.self) { group in
            for i in 0..<200 {
                group.addTask { slots.take("address-\(i % 20)") ? "address-\(i % 20)" : nil }
            }
            return await group.compactMap { $0 }.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(admitted.count == 10)
        #expect(!slots.take("someone else"))
        let holder = try #require(admitted.first)
        slots.give(holder)
        #expect(slots.take("someone else"))
        #expect(slots.inUse == 10)
        // Shared fairly: one address flooding the line holds a quarter of it; another still gets in.
        let fair = Slots(limit: 8)
        let flooder = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<100 { group.addTask { fair.take("flooder") } }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(flooder == 2)
        #expect(fair.take("operator"))
    }

    @Test("a burst of password hashes runs beside the database, never ahead of it: a query answers while they queue")
    func hashesLeaveTheStoreAlone() async throws {
        let store = try await SQLiteExamStore.open(path: ":memory:")
        let passwords = Passwords()
        // What finished, in order: "hash" 8 times and "query" once.
        let order = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    _ = try await passwords.hash("a password of eight hashes")
                    return "hash"
                }
            }
            // Let the hashes queue first (each is ~0.25 s of CPU); SQLite's calls run on NIO's
            // blocking pool, where they once waited behind every hash.
            try await Task.sleep(for: .milliseconds(50))
            group.addTask {
                let plan = try await store.exam("nobody")
                return plan == nil ? "query" : "query found an exam"
            }
            var order: [String] = []
            for try await done in group { order.append(done) }
            return order
        }
        try await store.shutdown()
        #expect(order.count == 9)
        let position = try #require(order.firstIndex(of: "query"))
        // Hashes run a core each; the query's few milliseconds come long before the 8th (on
        // NIO's shared pool it came after the 6th at the earliest).
        #expect(position <= 3, "the query waited for \(position) of 8 hashes")
    }
}

struct MeBody: Decodable {
    var name: String
    var role: String
    var csrfToken: String
}

struct MadeToken: Decodable {
    var id: String
    var token: String
}
