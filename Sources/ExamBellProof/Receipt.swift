import Crypto
import ExamBellCore
import Foundation

/// What a candidate holds after its end (DESIGN, "Proof"): which exam, when and how it
/// ended, and the SHA-256 of its answers as the server stored them, signed with Ed25519 over
/// the receipt's canonical JSON.
public struct Receipt: Sendable, Hashable, Codable {
    public var examId: String
    public var candidateId: String
    public var endDatetime: String
    /// `exam` when the exam's end ended the candidate, else as in `candidate.ended`.
    public var endedBy: String
    public var answersSha256: String
    public var answeredCount: Int
    public var lastSavedAt: String?
    public var issuedAt: String

    public init(
        examId: String, candidateId: String, endDatetime: String, endedBy: String, answersSha256: String, answeredCount: Int,
        lastSavedAt: String?, issuedAt: String
    ) {
        self.examId = examId
        self.candidateId = candidateId
        self.endDatetime = endDatetime
        self.endedBy = endedBy
        self.answersSha256 = answersSha256
        self.answeredCount = answeredCount
        self.lastSavedAt = lastSavedAt
        self.issuedAt = issuedAt
    }

    /// The receipt for `answers` as stored (item number → answer, `""` for a cleared one).
    public init(
        examId: String, candidateId: String, endDatetime: Timestamp, endedBy: String, answers: [Int: String], lastSavedAt: Timestamp?,
        issuedAt: Timestamp
    ) {
        self.init(
            examId: examId, candidateId: candidateId, endDatetime: endDatetime.iso8601, endedBy: endedBy,
            answersSha256: Self.answersSha256(answers), answeredCount: answers.values.filter { !$0.isEmpty }.count,
            lastSavedAt: lastSavedAt?.iso8601, issuedAt: issuedAt.iso8601
        )
    }

    /// The hex SHA-256 of the canonical JSON of `answers` (`{"1":"3","2":""}`).
    public static func answersSha256(_ answers: [Int: String]) -> String {
        let object = JSONValue.object(Dictionary(uniqueKeysWithValues: answers.map { (String($0.key), JSONValue.string($0.value)) }))
        return SHA256.hash(data: Data(object.canonical.utf8)).hex
    }

    enum CodingKeys: String, CodingKey {
        case examId, candidateId, endDatetime, endedBy, answersSha256, answeredCount, lastSavedAt, issuedAt
    }

    /// Every field, `lastSavedAt` as `null` when there is none: what was signed.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(examId, forKey: .examId)
        try container.encode(candidateId, forKey: .candidateId)
        try container.encode(endDatetime, forKey: .endDatetime)
        try container.encode(endedBy, forKey: .endedBy)
        try container.encode(answersSha256, forKey: .answersSha256)
        try container.encode(answeredCount, forKey: .answeredCount)
        try container.encode(lastSavedAt, forKey: .lastSavedAt)
        try container.encode(issuedAt, forKey: .issuedAt)
    }

    public var json: JSONValue {
        .object([
            "examId": .string(examId), "candidateId": .string(candidateId), "endDatetime": .string(endDatetime),
            "endedBy": .string(endedBy), "answersSha256": .string(answersSha256), "answeredCount": .int(Int64(answeredCount)),
            "lastSavedAt": .optional(lastSavedAt), "issuedAt": .string(issuedAt),
        ])
    }
}

/// A receipt with its signature: `{"receipt":{…},"keyId","signature","fieldDigests"}`.
/// `fieldDigests` (the first 16 hex digits of the SHA-256 of each field's canonical JSON) is
/// not part of what is signed: it lets a check name the field that was changed.
public struct SignedReceipt: Sendable, Hashable, Codable {
    public var receipt: Receipt
    public var keyId: String
    public var signature: String
    public var fieldDigests: [String: String]

    /// The receipt's file form (canonical JSON).
    public var json: JSONValue {
        .object([
            "receipt": receipt.json, "keyId": .string(keyId), "signature": .string(signature),
            "fieldDigests": .object(fieldDigests.mapValues(JSONValue.string)),
        ])
    }

    /// A short fingerprint for people to compare: the first 12 hex digits of the SHA-256 of
    /// the signature, in groups of four.
    public var fingerprint: String {
        let hex = SHA256.hash(data: Data(signature.utf8)).hex.prefix(12)
        return stride(from: 0, to: 12, by: 4).map { offset in
            String(hex.dropFirst(offset).prefix(4))
        }.joined(separator: "-")
    }
}

/// A published receipt key (`GET /api/receipt-keys`).
public struct ReceiptKey: Sendable, Hashable, Codable {
    public var keyId: String
    public var alg: String
    /// The raw 32-byte Ed25519 public key, base64url.
    public var publicKey: String
    /// When this key stopped signing (rotation); it still verifies what it signed.
    public var retiredAt: String?

    public init(keyId: String, publicKey: String, retiredAt: String? = nil) {
        self.keyId = keyId
        self.alg = "Ed25519"
        self.publicKey = publicKey
        self.retiredAt = retiredAt
    }
}

/// Signs and checks receipts.
public struct ReceiptSigner: Sendable {
    public let key: Curve25519.Signing.PrivateKey
    public let keyId: String

    public init(key: Curve25519.Signing.PrivateKey) {
        self.key = key
        self.keyId = Self.keyId(of: key.publicKey.rawRepresentation)
    }

    /// A key's id: the first 16 hex digits of the SHA-256 of its raw public key.
    public static func keyId(of publicKey: Data) -> String {
        String(SHA256.hash(data: publicKey).hex.prefix(16))
    }

    public var published: ReceiptKey {
        ReceiptKey(keyId: keyId, publicKey: Base64URL.encode(key.publicKey.rawRepresentation))
    }

    public func sign(_ receipt: Receipt) throws -> SignedReceipt {
        let signature = try key.signature(for: Data(receipt.json.canonical.utf8))
        return SignedReceipt(
            receipt: receipt, keyId: keyId, signature: Base64URL.encode(signature), fieldDigests: Self.fieldDigests(receipt.json)
        )
    }

    static func fieldDigests(_ receipt: JSONValue) -> [String: String] {
        guard case .object(let fields) = receipt else { return [:] }
        return fields.mapValues { String(SHA256.hash(data: Data($0.canonical.utf8)).hex.prefix(16)) }
    }

    /// What a check of a receipt file found: holds, or the first thing wrong, naming the field.
    public static func verify(_ file: JSONValue, keys: [ReceiptKey]) -> (holds: Bool, message: String) {
        guard let receipt = file["receipt"], case .object(let fields) = receipt, let keyId = file["keyId"]?.stringValue,
            let signature = file["signature"]?.stringValue
        else { return (false, "not a receipt: it needs \"receipt\" (an object), \"keyId\" and \"signature\"") }
        guard let key = keys.first(where: { $0.keyId == keyId }) else {
            return (false, "keyId \(keyId) is not one of the given keys: the receipt is from another deployment, or the wrong keys were given")
        }
        guard let raw = Base64URL.decode(key.publicKey), let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
        else { return (false, "key \(keyId) is not a raw Ed25519 public key") }
        guard let signatureBytes = Base64URL.decode(signature), signatureBytes.count == 64 else {
            return (false, "field signature was changed: it is not a base64url Ed25519 signature")
        }
        if publicKey.isValidSignature(signatureBytes, for: Data(receipt.canonical.utf8)) {
            return (true, "receipt holds: signed by key \(keyId)")
        }
        // Which field differs from what was signed: the digests say (they are not signed;
        // a receipt whose digests were changed too still fails, it is only named less well).
        let digests = file["fieldDigests"]
        let now = fieldDigests(receipt)
        let expected = ["examId", "candidateId", "endDatetime", "endedBy", "answersSha256", "answeredCount", "lastSavedAt", "issuedAt"]
        for name in expected where fields[name] == nil {
            return (false, "field \(name) is missing: the signature does not match")
        }
        for name in fields.keys.sorted() where !expected.contains(name) {
            return (false, "field \(name) was added: the signature does not match")
        }
        for name in expected where digests?[name]?.stringValue != now[name] {
            return (false, "field \(name) was changed: the signature does not match")
        }
        return (false, "field signature was changed: the signature does not match the receipt")
    }
}

/// base64url without padding (RFC 4648 §5).
public enum Base64URL {
    public static func encode(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func decode(_ text: String) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}
