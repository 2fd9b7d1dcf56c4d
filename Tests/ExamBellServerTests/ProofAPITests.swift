import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellProof
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

/// Receipts and the audit chain over HTTP, on both engines (DESIGN, "Proof").
@Suite("Proof: receipts and the audit chain", .timeLimit(.minutes(4)))
struct ProofAPITests {
    func session(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)", .contentType: "application/json"] }

    struct KeysBody: Decodable { var keys: [ReceiptKey] }
    struct ListBody: Decodable {
        struct Item: Decodable {
            var receipt: Receipt
            var keyId: String
            var fingerprint: String
        }
        var receipts: [Item]
    }

    @Test(
        "a receipt once the grace window after the end passed: answers saved in it are in its hash; it verifies against the published keys; it is issued once",
        arguments: TestNode.engines)
    func receiptAfterGrace(engines: String) async throws {
        try await TestNode.on(engines, answerGraceSeconds: 2) { test in
            try await test.node.application.test(.router) { client in
                let ids = try await client.makeExam("e1", candidates: 2, proctors: 1)
                let tokens = try await client.tokens("e1", role: "candidate", ids: ids)
                #expect(
                    try await client.call(.put, "/api/answers", json: #"{"answers":{"1":"3","2":"1"}}"#, headers: session(tokens[0])).status == .ok)
                let early = try await client.call(.get, "/api/receipt", headers: session(tokens[0]))
                #expect(early.status == .conflict, "no receipt while the exam runs")
                #expect(try decode(ErrorBody.self, early).error.code == "receipt_not_ready")

                let end = try await client.end("e1")
                // In the grace window: answers in flight, then the page's final save.
                let late = try await client.call(.put, "/api/answers", json: #"{"answers":{"2":"4","3":"2"}}"#, headers: session(tokens[0]))
                #expect(late.status == .ok)
                #expect(try await client.call(.put, "/api/answers", json: #"{"answers":{},"final":true}"#, headers: session(tokens[0])).status == .ok)
                #expect(
                    try await client.call(.get, "/api/receipt", headers: session(tokens[0])).status == .conflict,
                    "not while the grace window may still take a save")

                var response = try await client.call(.get, "/api/receipt", headers: session(tokens[0]))
                let deadline = ContinuousClock.now + .seconds(10)
                while response.status != .ok, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(200))
                    response = try await client.call(.get, "/api/receipt", headers: session(tokens[0]))
                }
                #expect(response.status == .ok, "issued once the grace window passed")
                let file = try JSONValue.parse(String(buffer: response.body))
                let receipt = try decode(SignedReceipt.self, response).receipt
                #expect(receipt.examId == "e1" && receipt.candidateId == ids[0] && receipt.endedBy == "exam")
                #expect(receipt.endDatetime == end.endDatetime)
                #expect(receipt.answeredCount == 3)
                #expect(receipt.answersSha256 == Receipt.answersSha256([1: "3", 2: "4", 3: "2"]), "the grace window's answers are in the hash")
                let stored = try await test.backends.store.answers(candidateId: ids[0])
                #expect(receipt.answersSha256 == Receipt.answersSha256(stored), "the hash is of the answers as stored")

                let keys = try decode(KeysBody.self, try await client.call(.get, "/api/receipt-keys", headers: [:])).keys
                #expect(keys.count == 1 && keys[0].alg == "Ed25519")
                #expect(ReceiptSigner.verify(file, keys: keys).holds)

                let after = try await client.call(.put, "/api/answers", json: #"{"answers":{"1":"1"}}"#, headers: session(tokens[0]))
                #expect(after.status == .conflict, "past the grace window")
                #expect(try await test.backends.store.answers(candidateId: ids[0]) == stored)
                let again = try await client.call(.get, "/api/receipt", headers: session(tokens[0]))
                #expect(String(buffer: again.body) == String(buffer: response.body), "issued once")

                // The exam's list (the proctor's and the console's views) issues the other's and holds both.
                let proctor = try await client.tokens("e1", role: "proctor", ids: ["e1-p1"])[0]
                let listed = try decode(ListBody.self, try await client.call(.get, "/api/exams/e1/receipts", headers: session(proctor)))
                #expect(Set(listed.receipts.map(\.receipt.candidateId)) == Set(ids))
                #expect(
                    listed.receipts.first { $0.receipt.candidateId == ids[0] }?.fingerprint == (try decode(SignedReceipt.self, response)).fingerprint)
                #expect(listed.receipts.first { $0.receipt.candidateId == ids[1] }?.receipt.answeredCount == 0)
                #expect(try await client.call(.get, "/api/exams/e1/receipts", headers: session(tokens[0])).status == .forbidden)
            }
        }
    }

    @Test("rotation: a new key signs, the old one stays published and its receipts still verify; another deployment's keys refuse them")
    func rotation() async throws {
        let test = try await TestNode(answerGraceSeconds: 0)
        let other = try await TestNode(sessionSecret: "another-deployment-secret-0123456789")
        try await test.node.application.test(.router) { client in
            let ids = try await client.makeExam("e1", candidates: 2)
            let tokens = try await client.tokens("e1", role: "candidate", ids: ids)
            _ = try await client.end("e1")
            try await Task.sleep(for: .milliseconds(1100))  // the 0 s grace window has passed
            let first = try JSONValue.parse(String(buffer: try await client.call(.get, "/api/receipt", headers: session(tokens[0])).body))
            let rotated = try await client.call(.post, "/api/receipt-keys/rotate")
            #expect(rotated.status == .created)
            let second = try JSONValue.parse(String(buffer: try await client.call(.get, "/api/receipt", headers: session(tokens[1])).body))
            #expect(first["keyId"] != second["keyId"], "the new key signs")
            let keys = try decode(KeysBody.self, try await client.call(.get, "/api/receipt-keys", headers: [:])).keys
            #expect(keys.count == 2 && keys.filter { $0.retiredAt != nil }.count == 1)
            #expect(ReceiptSigner.verify(first, keys: keys).holds, "the retired key still verifies")
            #expect(ReceiptSigner.verify(second, keys: keys).holds)
            #expect(try await client.call(.post, "/api/receipt-keys/rotate", headers: [:]).status == .unauthorized)
            try await other.node.application.test(.router) { otherClient in
                let otherKeys = try decode(KeysBody.self, try await otherClient.call(.get, "/api/receipt-keys", headers: [:])).keys
                let verdict = ReceiptSigner.verify(first, keys: otherKeys)
                #expect(!verdict.holds && verdict.message.contains("another deployment"))
            }
        }
    }

    @Test("key rotations are budgeted per operator: of 10 at once, 3 are made and 7 refused with 429")
    func rotationBudget() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.router) { client in
            #expect(try decode(KeysBody.self, try await client.call(.get, "/api/receipt-keys", headers: [:])).keys.count == 1)
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<10 { group.addTask { try await client.call(.post, "/api/receipt-keys/rotate").status } }
                return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
            }
            #expect(statuses.count { $0 == .created } == 3)
            #expect(statuses.count { $0 == .tooManyRequests } == 7)
            #expect(try decode(KeysBody.self, try await client.call(.get, "/api/receipt-keys", headers: [:])).keys.count == 4)
        }
    }

    @Test(
        "the receipt keys a deployment keeps are capped: rotations at once never overdraw it, the refused ones change nothing",
        arguments: TestNode.engines)
    func rotationCap(engines: String) async throws {
        let capped: (inout ExamBellConfiguration) -> Void = {
            $0.budgets.receiptKeys = 3
            $0.budgets.keyRotations = Rate(burst: 50, perMinute: 50)
        }
        try await TestNode.on(engines, configure: capped) { test in
            try await test.node.application.test(.router) { client in
                #expect(try decode(KeysBody.self, try await client.call(.get, "/api/receipt-keys", headers: [:])).keys.count == 1)
                let answers = try await withThrowingTaskGroup(of: (HTTPResponse.Status, String).self) { group in
                    for _ in 0..<10 {
                        group.addTask {
                            let response = try await client.call(.post, "/api/receipt-keys/rotate")
                            return (response.status, String(buffer: response.body))
                        }
                    }
                    return try await group.reduce(into: [(HTTPResponse.Status, String)]()) { $0.append($1) }
                }
                #expect(answers.count { $0.0 == .created } == 2)
                #expect(answers.count { $0.0 == .conflict && $0.1.contains("receipt_key_limit") } == 8)
                let keys = try decode(KeysBody.self, try await client.call(.get, "/api/receipt-keys", headers: [:])).keys
                #expect(keys.count == 3)
                #expect(keys.count { $0.retiredAt == nil } >= 1, "a key still signs")
            }
        }
    }

    @Test("the audit chain exports as JSON lines that verify; a row changed in the DB is named", arguments: TestNode.engines)
    func auditChain(engines: String) async throws {
        try await TestNode.on(engines) { test in
            try await test.node.application.test(.router) { client in
                let ids = try await client.makeExam("e1", candidates: 3)
                let tokens = try await client.tokens("e1", role: "candidate", ids: ids)
                _ = try await client.call(.put, "/api/answers", json: #"{"answers":{"1":"3"}}"#, headers: session(tokens[0]))
                _ = try await client.end("e1", reason: "정시 종료")
                let export = try await client.call(.get, "/api/exams/e1/audit?format=jsonl")
                #expect(export.status == .ok)
                #expect(export.headers[.contentType]?.hasPrefix("application/jsonl") == true)
                let text = String(buffer: export.body)
                let verdict = AuditChain.verify(jsonl: text)
                #expect(verdict.holds, "\(verdict.problem ?? "")")
                #expect(verdict.rows >= 3)
                struct AuditBody: Decodable { var head: String? }
                let head = try decode(AuditBody.self, try await client.call(.get, "/api/exams/e1/audit")).head
                #expect(head == verdict.head, "the console's head is the chain's last hash")
                #expect(AuditChain.verify(jsonl: text, head: head).holds)
                #expect(try await client.call(.get, "/api/exams/e1/audit?format=xml").status == .badRequest)

                // Whoever holds the database changes row 2: the export names it.
                guard let store = test.backends.store as? SQLExamStore else {
                    Issue.record("an SQL store")
                    return
                }
                try await store.execute("UPDATE exam_audit_log SET actor = 'someone' WHERE plan_id = 'e1' AND seq = 2")
                let tampered = AuditChain.verify(jsonl: String(buffer: try await client.call(.get, "/api/exams/e1/audit?format=jsonl").body))
                #expect(tampered.problem?.hasPrefix("row 2: hash does not match") == true, "\(tampered.problem ?? "holds")")
            }
        }
    }

    @Test(
        "two web nodes appending to one exam's log and linking its chain at once: one order, every row once, the chain holds",
        .timeLimit(.minutes(2)))
    func concurrentAppends() async throws {
        let url = try await PostgresTestDatabase.freshDatabaseURL()
        try await PostgresExamStore.withStore(url: url) { first in
            try await PostgresExamStore.withStore(url: url) { second in
                _ = try await first.createExam(examId: "e1", title: "A", actor: "admin", at: .now())
                let perNode = 40
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (index, store) in [first, second].enumerated() {
                        for number in 0..<perNode {
                            group.addTask {
                                try await store.audit(
                                    AuditEntry(examId: "e1", actor: "node\(index)", action: "note", reason: nil, detail: "\(number)", at: .now()))
                            }
                        }
                    }
                    // Both nodes link while both write.
                    for store in [first, second] {
                        group.addTask {
                            for _ in 0..<20 {
                                try await store.chainAudit(examId: "e1")
                                try await Task.sleep(for: .milliseconds(5))
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                try await second.chainAudit(examId: "e1")
                let rows = try await first.auditLog(examId: "e1")
                #expect(rows.count == 2 * perNode + 1, "the exam's creation and every note")
                #expect(rows.map(\.seq) == Array(1...(2 * perNode + 1)).map(Optional.some))
                let verdict = AuditChain.verify(jsonl: rows.map(AuditChain.exportLine).joined(separator: "\n"))
                #expect(verdict.holds, "\(verdict.problem ?? "")")
                #expect(Set(rows.filter { $0.actor == "node1" }.compactMap(\.detail)).count == perNode, "both nodes' rows are in")
            }
        }
    }
}
