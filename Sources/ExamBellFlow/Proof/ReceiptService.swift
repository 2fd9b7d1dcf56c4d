import Crypto
import ExamBellCore
import ExamBellProof
import ExamBellRuntime
import Foundation
import Synchronization

/// Issues and lists receipts (DESIGN, "Proof"), signing with the deployment's current key.
///
/// Keys live in the DB so that every web node signs with a published key: the public half in
/// the clear, the private half sealed (ChaCha20-Poly1305) with a key derived from the web
/// nodes' session secret, so the DB alone cannot sign. The first node to need a key and find
/// none it can open makes one; rotation adds a key and retires the others, which stay
/// published and keep verifying what they signed.
public final class ReceiptService: Sendable {
    package let store: any ReceiptStore & ExamPlanStore
    package let graceSeconds: Int
    /// Keys kept at most (`Budgets.receiptKeys`); a rotation past it is refused.
    package let maxKeys: Int
    private let sealing: SymmetricKey
    private let signer = Mutex<ReceiptSigner?>(nil)

    public init(store: any ReceiptStore & ExamPlanStore, sessionSecret: String, graceSeconds: Int, maxKeys: Int = Budgets().receiptKeys) {
        self.store = store
        self.graceSeconds = graceSeconds
        self.maxKeys = maxKeys
        sealing = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: Data(sessionSecret.utf8)), info: Data("exambell receipt signing key".utf8),
            outputByteCount: 32)
    }

    /// The candidate's receipt, issued now if due; nil before it is due.
    public func receipt(candidateId: String, examId: String) async throws -> SignedReceipt? {
        let sign = try await signing()
        guard
            let body = try await store.receipt(
                candidateId: candidateId, examId: examId, now: .now(), graceSeconds: graceSeconds, sign: sign)
        else { return nil }
        return try Self.decode(body)
    }

    /// The exam's latest `latest` receipts (all with nil) and how many there are, after
    /// issuing a batch of those due.
    public func receipts(examId: String, latest: Int?) async throws -> (receipts: [SignedReceipt], total: Int) {
        let sign = try await signing()
        let list = try await store.receipts(examId: examId, now: .now(), graceSeconds: graceSeconds, latest: latest, sign: sign)
        return (try list.bodies.map(Self.decode), list.total)
    }

    /// Every key that signed or signs, newest first.
    public func publishedKeys() async throws -> [ReceiptKey] {
        _ = try await currentSigner()
        return try await store.receiptKeys().map {
            ReceiptKey(keyId: $0.keyId, publicKey: $0.publicKey, retiredAt: $0.retiredAt?.iso8601)
        }
    }

    /// A new signing key; the others retire (and stay published).
    public func rotate() async throws -> ReceiptKey {
        let new = ReceiptSigner(key: Curve25519.Signing.PrivateKey())
        try await store.addReceiptKey(try seal(new), retiringOthers: true, limit: maxKeys)
        signer.withLock { $0 = new }
        return new.published
    }

    private func signing() async throws -> @Sendable (ReceiptFacts) throws -> String {
        let signer = try await currentSigner()
        return { facts in
            let receipt = Receipt(
                examId: facts.examId, candidateId: facts.candidateId, endDatetime: facts.endDatetime, endedBy: facts.endedBy,
                answers: facts.answers, lastSavedAt: facts.lastSavedAt, issuedAt: .now())
            return try signer.sign(receipt).json.canonical
        }
    }

    /// The newest unretired key this node can open, made if there is none.
    private func currentSigner() async throws -> ReceiptSigner {
        if let signer = signer.withLock({ $0 }) { return signer }
        let keys = try await store.receiptKeys()
        for key in keys where key.retiredAt == nil {
            if let opened = open(key) {
                signer.withLock { $0 = opened }
                return opened
            }
        }
        let new = ReceiptSigner(key: Curve25519.Signing.PrivateKey())
        try await store.addReceiptKey(try seal(new), retiringOthers: false, limit: nil)
        signer.withLock { $0 = new }
        return new
    }

    private func seal(_ signer: ReceiptSigner) throws -> StoredReceiptKey {
        let sealed = try ChaChaPoly.seal(signer.key.rawRepresentation, using: sealing).combined
        return StoredReceiptKey(
            keyId: signer.keyId, publicKey: signer.published.publicKey, sealedPrivateKey: Base64URL.encode(sealed), createdAt: .now())
    }

    private func open(_ key: StoredReceiptKey) -> ReceiptSigner? {
        guard let data = Base64URL.decode(key.sealedPrivateKey), let box = try? ChaChaPoly.SealedBox(combined: data),
            let raw = try? ChaChaPoly.open(box, using: sealing), let privateKey = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw)
        else { return nil }
        let signer = ReceiptSigner(key: privateKey)
        return signer.keyId == key.keyId ? signer : nil
    }

    static package func decode(_ body: String) throws -> SignedReceipt {
        try JSONDecoder().decode(SignedReceipt.self, from: Data(body.utf8))
    }
}
