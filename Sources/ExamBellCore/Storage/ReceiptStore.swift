/// What a candidate's receipt states, read from the DB when it is issued (DESIGN, "Proof").
public struct ReceiptFacts: Sendable, Hashable {
    public var examId: String
    public var candidateId: String
    /// When its answers stopped being taken.
    public var endDatetime: Timestamp
    /// `exam`, or how the candidate ended alone (`CandidateEndCause`).
    public var endedBy: String
    /// Its answers as stored (cleared ones absent).
    public var answers: [Int: String]
    public var lastSavedAt: Timestamp?

    public init(
        examId: String, candidateId: String, endDatetime: Timestamp, endedBy: String, answers: [Int: String], lastSavedAt: Timestamp?
    ) {
        self.examId = examId
        self.candidateId = candidateId
        self.endDatetime = endDatetime
        self.endedBy = endedBy
        self.answers = answers
        self.lastSavedAt = lastSavedAt
    }
}

/// A receipt signing key as the DB keeps it: the public half in the clear, the private half
/// sealed with a key only the web nodes' secret opens.
public struct StoredReceiptKey: Sendable, Hashable {
    public var keyId: String
    public var publicKey: String
    public var sealedPrivateKey: String
    public var createdAt: Timestamp
    public var retiredAt: Timestamp?

    public init(keyId: String, publicKey: String, sealedPrivateKey: String, createdAt: Timestamp, retiredAt: Timestamp? = nil) {
        self.keyId = keyId
        self.publicKey = publicKey
        self.sealedPrivateKey = sealedPrivateKey
        self.createdAt = createdAt
        self.retiredAt = retiredAt
    }
}

/// The DB's role of receipts and their keys.
public protocol ReceiptStore: Sendable {
    /// The candidate's receipt (as `sign` wrote it), issued now if it is due: the candidate
    /// ended and `graceSeconds` passed since its end, so every save the window takes (the
    /// page's final save among them) is in and no other can come. Issuing reads the answers
    /// and records the receipt in one transaction that holds the candidate's row; a save that
    /// still reaches it afterwards (a node whose clock is behind) is refused and kept as late.
    /// Nil when not due yet; 404 for a candidate not of the exam.
    func receipt(
        candidateId: String, examId: String, now: Timestamp, graceSeconds: Int,
        sign: @escaping @Sendable (ReceiptFacts) throws -> String
    ) async throws -> String?

    /// The exam's latest `latest` receipts (all with nil), oldest first, and how many it has,
    /// after issuing a bounded batch of those that are due.
    func receipts(
        examId: String, now: Timestamp, graceSeconds: Int, latest: Int?, sign: @escaping @Sendable (ReceiptFacts) throws -> String
    ) async throws -> (bodies: [String], total: Int)

    /// Every signing key, newest first.
    func receiptKeys() async throws -> [StoredReceiptKey]

    /// Adds a key; with `retiringOthers`, every key not yet retired is retired at its time.
    /// 409 `receipt_key_limit` when `limit` keys are kept already (every key stays published,
    /// so rotations are budgeted); concurrent additions take turns, so two cannot both take
    /// the last place.
    func addReceiptKey(_ key: StoredReceiptKey, retiringOthers: Bool, limit: Int?) async throws
}
