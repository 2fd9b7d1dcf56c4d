import ExamBellCore
import ExamBellRuntime
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// Who calls the admin API, and whether their role allows the call (DESIGN "Operators").
///
/// A request names its operator in one of three ways:
/// - `Authorization: Bearer ebt_…`: an operator's API token (automation, `exambell end`);
/// - `Authorization: Bearer <--admin-token>`: the bootstrap, acting as `admin`;
/// - the console's session cookie; then a state-changing call must also carry the
///   session's `X-CSRF-Token` (SameSite=Strict already keeps other sites' forms out; the
///   header keeps out anything that could still send the cookie).
///
/// Wrong tokens are counted per client address and refused with 429 after
/// `tokenFailureLimit` within a minute, so guessing the admin token is hopeless.
package struct OperatorAuth: Sendable {
    static package let cookieName = "exambell_session"
    static package let tokenPrefix = "ebt_"
    static package let csrfHeader = HTTPField.Name("X-CSRF-Token")!

    package let adminToken: String
    package let store: any OperatorStore
    package let tokenFailures: AttemptThrottle

    package init(adminToken: String, store: any OperatorStore, tokenFailureLimit: Int = 20) {
        self.adminToken = adminToken
        self.store = store
        self.tokenFailures = AttemptThrottle(limit: tokenFailureLimit, window: .seconds(60))
    }

    /// The caller, if its role permits `permission`: 401 without valid credentials, 403
    /// `forbidden` when the role does not allow it, 429 after too many wrong tokens.
    package func require(_ request: Request, context: some RequestContext, _ permission: Permission) async throws -> Principal {
        guard let principal = try await identify(request, context: context) else {
            throw ExamBellError.unauthorized(
                "Admin calls need a console session (POST /api/login) or Authorization: Bearer <API token>."
            )
        }
        return try permit(principal, permission)
    }

    /// `principal` when its role permits `permission`; 403 `forbidden` otherwise.
    package func permit(_ principal: Principal, _ permission: Permission) throws(ExamBellError) -> Principal {
        guard principal.role.permits(permission) else {
            let article = principal.role == .admin ? "an" : "a"
            throw .forbidden("\(principal.name) is \(article) \(principal.role.rawValue) and may not \(permission.verb).")
        }
        return principal
    }

    /// The operator a request names; nil when it names none (no cookie, and a bearer token
    /// that is neither an API token nor the admin token, like a proctor's session token).
    /// Throws 401 for an unknown API token or an ended session, 403 `csrf_failed` for a
    /// cookie call without its CSRF token.
    package func identify(_ request: Request, context: some RequestContext) async throws -> Principal? {
        let address = "address:\(context.clientAddress)"
        if let bearer = request.bearerToken {
            // Counted as a failure first (concurrent guesses cannot share one count), forgiven
            // when it is good.
            try tokenFailures.reserve(address, what: "token attempts from your address")
            if SecretToken.constantTimeEqual(bearer, adminToken) {
                tokenFailures.forgive(address)
                return Principal(name: "admin", role: .admin, isBootstrap: true)
            }
            if bearer.hasPrefix(Self.tokenPrefix) {
                let owner = try await store.tokenOwner(secretHash: SecretToken.hash(bearer), now: .now())
                guard let owner else {
                    throw ExamBellError.unauthorized("The API token is unknown or revoked, or its operator is disabled.")
                }
                tokenFailures.forgive(address)
                return owner
            }
            // Not an operator's: a browser session token (checked by its caller), or a guess.
            if bearer.hasPrefix("ey") { tokenFailures.forgive(address) }
            return nil
        }
        guard let cookie = request.cookies[Self.cookieName]?.value, !cookie.isEmpty else { return nil }
        guard let session = try await store.session(secretHash: SecretToken.hash(cookie), now: .now()) else {
            throw ExamBellError.unauthorized("Your console session has ended; log in again.")
        }
        if !request.method.isSafe {
            guard let presented = request.headers[Self.csrfHeader], SecretToken.constantTimeEqual(presented, session.csrfToken) else {
                throw ExamBellError(
                    status: 403, code: "csrf_failed", message: "This call needs the session's X-CSRF-Token header (from /api/login or /api/me)."
                )
            }
        }
        return session.principal
    }
}

extension Permission {
    package var verb: String {
        switch self {
        case .read: "read exams"
        case .operate: "change exams"
        case .manage: "manage operators"
        }
    }
}

extension HTTPRequest.Method {
    /// GET, HEAD and OPTIONS change nothing.
    package var isSafe: Bool { self == .get || self == .head || self == .options }
}

extension RequestContext {
    /// The client's IP address (behind a trusted proxy, the one it forwarded for), or
    /// `unknown` (requests made in memory by tests).
    package var clientAddress: String {
        if let client = (self as? ExamBellRequestContext)?.client { return client }
        return (self as? any RemoteAddressRequestContext)?.remoteAddress?.ipAddress ?? "unknown"
    }
}

extension Request {
    /// The token of an `Authorization: Bearer …` header.
    package var bearerToken: String? {
        guard let header = headers[.authorization] else { return nil }
        let prefix = "Bearer "
        guard header.count > prefix.count, header.lowercased().hasPrefix("bearer ") else { return nil }
        return String(header.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces)
    }
}

/// The request context of every ExamBell route: Hummingbird's basic one plus the client's
/// address, which throttles count by.
public struct ExamBellRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// The client a trusted proxy forwarded for (`ClientAddressMiddleware`); nil for a
    /// direct connection.
    public var client: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}
