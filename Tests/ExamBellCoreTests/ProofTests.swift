import Crypto
import ExamBellCore
import ExamBellProof
import Foundation
import Testing

@Suite("Evidence anyone can check: canonical JSON, the audit chain, receipts", .timeLimit(.minutes(1)))
struct ProofTests {
    @Test("canonical JSON: keys sorted, no spaces, only what JSON must escape (Python's json.dumps(sort_keys, separators, ensure_ascii=False))")
    func canonical() throws {
        let value = try JSONValue.parse(#"{ "b": "x\"y\\z\n\u0001é/한", "a": 1, "c": [true, null, -3], "B": {"z": 1, "y": "2"} }"#)
        #expect(value.canonical == #"{"B":{"y":"2","z":1},"a":1,"b":"x\"y\\z\n\u0001é/한","c":[true,null,-3]}"#)
        // Python: json.dumps("\x08\x0c\x1f\t") == '"\\b\\f\\u001f\\t"'
        #expect(JSONValue.string("\u{08}\u{0C}\u{1F}\t").canonical == #""\b\f\u001f\t""#)
    }

    static func entries(_ count: Int) -> [AuditEntry] {
        (1...count).map { number in
            AuditEntry(
                examId: "e1", actor: number == 3 ? "관리자" : "admin", action: "time_change",
                reason: number.isMultiple(of: 2) ? "reason \(number)" : nil,
                detail: "detail \(number)", at: Timestamp(secondsSince1970: 1_800_000_000 + Int64(number)))
        }
    }

    static func export(_ entries: [AuditEntry]) -> [String] { entries.map(AuditChain.exportLine) }

    @Test("a chain verifies; a changed, removed or reordered row is named, and a cut-off chain fails against its head")
    func chain() throws {
        let linked = AuditChain.link(Self.entries(5), after: (0, AuditChain.genesis))
        #expect(linked.map(\.seq) == [1, 2, 3, 4, 5])
        #expect(linked[0].prevHash == AuditChain.genesis)
        #expect(linked[3].prevHash == linked[2].hash)
        let lines = Self.export(linked)
        let verdict = AuditChain.verify(jsonl: lines.joined(separator: "\n"))
        #expect(verdict.holds && verdict.rows == 5 && verdict.head == linked[4].hash)

        var changed = lines
        changed[2] = changed[2].replacingOccurrences(of: "관리자", with: "admin")
        #expect(AuditChain.verify(jsonl: changed.joined(separator: "\n")).problem?.hasPrefix("row 3: hash does not match") == true)

        var removed = lines
        removed.remove(at: 1)
        #expect(AuditChain.verify(jsonl: removed.joined(separator: "\n")).problem?.hasPrefix("row 2: seq is 3 where 2 was expected") == true)

        var reordered = lines
        reordered.swapAt(3, 4)
        #expect(AuditChain.verify(jsonl: reordered.joined(separator: "\n")).problem?.hasPrefix("row 4: seq is 5") == true)

        // A row changed and its hash recomputed: the next row's prevHash no longer matches.
        var forged = linked
        forged[1].actor = "someone else"
        let reHashed = AuditChain.link([forged[1]], after: (1, linked[0].hash ?? ""))[0]
        var forgedLines = lines
        forgedLines[1] = AuditChain.exportLine(reHashed)
        #expect(AuditChain.verify(jsonl: forgedLines.joined(separator: "\n")).problem?.hasPrefix("row 3: prevHash does not match row 2") == true)

        let cut = lines.dropLast().joined(separator: "\n")
        #expect(AuditChain.verify(jsonl: cut).holds, "a chain cut short holds by itself")
        #expect(AuditChain.verify(jsonl: cut, head: linked[4].hash).problem?.contains("cut off") == true, "not against the head written down")

        // Appending continues the chain from its head.
        let more = AuditChain.link(Self.entries(2), after: (5, linked[4].hash ?? ""))
        #expect(AuditChain.verify(jsonl: (lines + Self.export(more)).joined(separator: "\n")).rows == 7)
    }

    static let receipt = Receipt(
        examId: "e1", candidateId: "e1-c1", endDatetime: Timestamp(secondsSince1970: 1_800_000_000), endedBy: "exam",
        answers: [1: "3", 2: "1", 12: "광합성"], lastSavedAt: Timestamp(secondsSince1970: 1_800_000_004),
        issuedAt: Timestamp(secondsSince1970: 1_800_000_010))

    @Test("a receipt verifies; one changed byte in any field fails naming that field; another deployment's receipt fails")
    func receipts() throws {
        let signer = ReceiptSigner(key: Curve25519.Signing.PrivateKey())
        let signed = try signer.sign(Self.receipt)
        #expect(signed.receipt.answeredCount == 3)
        #expect(signed.receipt.answersSha256 == Receipt.answersSha256([12: "광합성", 2: "1", 1: "3"]))
        let file = signed.json.canonical
        #expect(ReceiptSigner.verify(try JSONValue.parse(file), keys: [signer.published]).holds)

        // One byte changed in each field in turn.
        let hash = signed.receipt.answersSha256
        let flipped = (hash.first == "a" ? "b" : "a") + hash.dropFirst()
        let changes: [(String, String, String)] = [
            ("examId", #""examId":"e1""#, #""examId":"e2""#),
            ("candidateId", #""candidateId":"e1-c1""#, #""candidateId":"e1-c7""#),
            ("endDatetime", #""endDatetime":"2027"#, #""endDatetime":"2028"#),
            ("endedBy", #""endedBy":"exam""#, #""endedBy":"exaM""#),
            ("answersSha256", #""answersSha256":"\#(hash)""#, #""answersSha256":"\#(flipped)""#),
            ("answeredCount", #""answeredCount":3"#, #""answeredCount":4"#),
            ("lastSavedAt", #""lastSavedAt":"2027"#, #""lastSavedAt":"2029"#),
            ("issuedAt", #""issuedAt":"2027"#, #""issuedAt":"2026"#),
        ]
        for (field, from, to) in changes {
            #expect(file.contains(from), "the fixture holds \(from)")
            let verdict = ReceiptSigner.verify(try JSONValue.parse(file.replacingOccurrences(of: from, with: to)), keys: [signer.published])
            #expect(!verdict.holds)
            #expect(verdict.message.hasPrefix("field \(field) was changed"), "\(field): \(verdict.message)")
        }
        var badSignature = Array(signed.signature)
        badSignature[10] = badSignature[10] == "A" ? "B" : "A"
        var tampered = signed
        tampered.signature = String(badSignature)
        #expect(ReceiptSigner.verify(tampered.json, keys: [signer.published]).message.hasPrefix("field signature was changed"))

        let other = ReceiptSigner(key: Curve25519.Signing.PrivateKey())
        let foreign = try other.sign(Self.receipt)
        let verdict = ReceiptSigner.verify(foreign.json, keys: [signer.published])
        #expect(!verdict.holds && verdict.message.contains("another deployment"))
        // Claiming this deployment's key id does not help: the signature is not its.
        var claimed = foreign
        claimed.keyId = signer.keyId
        #expect(!ReceiptSigner.verify(claimed.json, keys: [signer.published]).holds)
    }
}
