import ExamBellCore
import Foundation
import JWTKit
import Synchronization

/// Who a browser is: its id, role and exam, as carried by its signed session token.
public struct Session: Sendable, Hashable {
    public var subject: String
    public var role: SessionRole
    public var examId: String

    public init(subject: String, role: SessionRole, examId: String) {
        self.subject = subject
        self.role = role
        self.examId = examId
    }
}

/// Issues and checks browser session tokens (JWT, HS256) without a DB round trip.
///
/// A token carries subject, role, exam and expiry; web and socket nodes share the secret.
public struct SessionTokens: Sendable {
    package struct Claims: JWTPayload {
        package var sub: SubjectClaim
        package var role: String
        package var exam: String
        package var exp: ExpirationClaim
        /// `socket` for a socket ticket; absent for a session token.
        package var use: String?
        /// A ticket's own id: it opens one socket (`TicketLedger`).
        package var jti: String?

        package func verify(using algorithm: some JWTAlgorithm) async throws {
            try exp.verifyNotExpired()
        }
    }

    private let keys: JWTKeyCollection
    private let lifetime: Duration
    /// The tickets already shown to this node.
    private let ledger = TicketLedger()
    /// Where tickets are claimed for the whole cluster (the state store: `ticket_used:{jti}`,
    /// `SET NX` until the ticket expires), so a ticket opens one socket on any node; nil for
    /// this node's ledger alone.
    package let sharedTickets: (any StateStore)?
    /// Refuses the tokens of exams whose sessions have closed; nil for no such check.
    public let closing: SessionClosing?

    /// HS256 needs a key at least as long as its hash (32 bytes).
    public static let minimumSecretLength = 32

    /// Tokens signed with `secret`, valid for `lifetime` and, with `closing`, until their
    /// exam's sessions close.
    public init(
        secret: String, lifetime: Duration, closing: SessionClosing? = nil, sharedTickets: (any StateStore)? = nil
    ) async throws(ExamBellError) {
        guard secret.utf8.count >= Self.minimumSecretLength else {
            throw .badRequest(code: "weak_session_secret", "The session secret must be at least \(Self.minimumSecretLength) bytes.")
        }
        self.keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        self.lifetime = lifetime
        self.closing = closing
        self.sharedTickets = sharedTickets
    }

    /// A token for `subject` in `role` at exam `examId`, expiring after the lifetime
    /// (or at `expiry` when given).
    public func issue(subject: String, role: SessionRole, examId: String, expiry: Date? = nil) async throws -> String {
        try await sign(subject: subject, role: role, examId: examId, expiry: expiry ?? Date().addingTimeInterval(Double(lifetime.components.seconds)))
    }

    private func sign(subject: String, role: SessionRole, examId: String, expiry: Date, use: String? = nil) async throws -> String {
        try await keys.sign(
            Claims(
                sub: .init(value: subject), role: role.rawValue, exam: examId, exp: .init(value: expiry), use: use,
                jti: use == nil ? nil : SecretToken.random()
            ))
    }

    /// How long a socket ticket opens sockets.
    public static let ticketLifetime: Duration = .seconds(30)

    /// A socket ticket for `session`: what the pages put in the WebSocket's URL instead of
    /// their session token, since proxies and load balancers log URLs. It opens one socket
    /// within 30 s (or until `expiry`): a second handshake with it is refused (401
    /// `ticket_used`) by any node of the cluster. It is no session token: the API refuses it.
    public func ticket(for session: Session, expiry: Date? = nil) async throws -> String {
        try await sign(
            subject: session.subject, role: session.role, examId: session.examId,
            expiry: expiry ?? Date().addingTimeInterval(Double(Self.ticketLifetime.components.seconds)), use: "socket"
        )
    }

    /// What a token is shown for: an API call (a session token only) or a socket's handshake
    /// (a ticket, or a session token as DESIGN's `/ws?token=`).
    public enum Purpose: Sendable {
        case api
        case socket
    }

    /// The session of a valid token; 401 for a missing, forged, malformed or expired one,
    /// for a socket ticket shown to the API, and (`session_closed`) for one whose exam's
    /// sessions have closed.
    public func verify(_ token: String?, for purpose: Purpose = .api) async throws(ExamBellError) -> Session {
        guard let token, !token.isEmpty else { throw .unauthorized("A session token is required.") }
        // Only what this server signs: HS256. A header naming another algorithm (`none`
        // included) is refused before its signature is even looked at.
        guard Self.headerAlgorithm(of: token) == "HS256" else { throw .unauthorized("The session token is invalid.") }
        let claims: Claims
        do {
            claims = try await keys.verify(token, as: Claims.self)
        } catch {
            throw .unauthorized("The session token is invalid or expired.")
        }
        guard let role = SessionRole(rawValue: claims.role), Identifier.isValid(claims.sub.value),
            Identifier.isValid(claims.exam)
        else { throw .unauthorized("The session token is invalid.") }
        if claims.use != nil, purpose == .api || claims.use != "socket" {
            throw .unauthorized("A socket ticket opens a socket only; the API takes the session token.")
        }
        if claims.use == "socket" {
            guard let id = claims.jti, ledger.firstUse(id, until: claims.exp.value), await claimedFirst(id, until: claims.exp.value) else {
                throw ExamBellError(status: 401, code: "ticket_used", message: "This socket ticket was used already; ask for a new one.")
            }
        }
        try await closing?.check(examId: claims.exam)
        return Session(subject: claims.sub.value, role: role, examId: claims.exam)
    }

    /// Whether this is the cluster's first use of ticket `id` (true without a shared store).
    /// A state store that cannot answer leaves this node's ledger to decide: a Redis outage
    /// does not keep browsers from connecting, and a ticket still opens one socket per node.
    private func claimedFirst(_ id: String, until expiry: Date) async -> Bool {
        guard let sharedTickets else { return true }
        let left = max(1, Int(expiry.timeIntervalSinceNow.rounded(.up)))
        do {
            // An owner of its own: `lock` lets an owner take its lock again.
            return try await sharedTickets.lock(Self.ticketKey(id), owner: UUID().uuidString, ttl: .seconds(left))
        } catch {
            return true
        }
    }

    /// The state store's key of a used ticket.
    static package func ticketKey(_ id: String) -> String { "ticket_used:\(id)" }

    /// The `alg` of a JWT's header, if the header is base64url JSON.
    static package func headerAlgorithm(of token: String) -> String? {
        guard let header = token.split(separator: ".", maxSplits: 1).first, header.utf8.count <= 512 else { return nil }
        var base64 = header.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.utf8.count % 4) % 4)
        guard let data = Data(base64Encoded: base64),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return object["alg"] as? String
    }
}

/// The socket tickets a node has taken, each until it expires: a ticket opens one socket.
/// Bounded by the tickets' 30 s life (and the page-call budget that issues them).
final package class TicketLedger: Sendable {
    /// Tickets seen, each until it expires, and the size at which expired ones are dropped
    /// (doubling, so 19,000 browsers reconnecting at once cost one pass per doubling).
    private let table = Mutex<(used: [String: Date], pruneAt: Int)>(([:], 4_096))

    /// True the first time `id` is shown (and notes it until `expiry`), false after.
    package func firstUse(_ id: String, until expiry: Date) -> Bool {
        let now = Date()
        return table.withLock { table in
            guard table.used[id] == nil else { return false }
            table.used[id] = expiry
            if table.used.count >= table.pruneAt {
                table.used = table.used.filter { $0.value > now }
                table.pruneAt = max(4_096, 2 * table.used.count)
            }
            return true
        }
    }
}
