import ExamBellCore
import ExamBellHTTP
import ExamBellRuntime
import Foundation
import Hummingbird
import Logging

/// The operators' calls of DESIGN "Operators": console login and logout, who is logged in,
/// operator accounts (`admin` only), and each operator's own API tokens.
///
/// Logins cannot be turned into a lockout (`Budgets`): failures are counted before each
/// check, per name and address (5 in 15 minutes) and per address (30), with 429
/// `budget_exceeded` past either; a name that failed often from everywhere is only slowed
/// (each of its logins waits `loginSlowdown` first), never refused, so an attacker elsewhere
/// can slow an operator's login but not stop it. At most `checking.limit` logins are checked
/// or wait for their bcrypt at once (each takes ~0.25 s of CPU), one address at most a quarter
/// of them; past that 503 `busy`.
package struct OperatorsController<Context: RequestContext>: Sendable {
    package let store: any OperatorStore
    package let auth: OperatorAuth
    package let maxBodySize: Int
    /// Secure cookies when the public web URL is https.
    package let secureCookies: Bool
    package let sessionLifetime: Duration
    package let pairFailures: AttemptThrottle
    package let addressFailures: AttemptThrottle
    package let nameFailures: AttemptThrottle
    package let slowdown: Duration
    /// Logins whose password check is running or waiting for a thread.
    package let checking: Slots
    /// Hashes and checks passwords on threads of their own.
    package let passwords: Passwords

    package init(
        store: any OperatorStore, auth: OperatorAuth, maxBodySize: Int, secureCookies: Bool, sessionLifetime: Duration,
        budgets: Budgets, checking: Slots, passwords: Passwords
    ) {
        self.passwords = passwords
        self.store = store
        self.auth = auth
        self.maxBodySize = maxBodySize
        self.secureCookies = secureCookies
        self.sessionLifetime = sessionLifetime
        self.pairFailures = AttemptThrottle(budgets.loginFailuresPerNameAndAddress)
        self.addressFailures = AttemptThrottle(budgets.loginFailuresPerAddress)
        self.nameFailures = AttemptThrottle(budgets.loginFailuresPerName)
        self.slowdown = budgets.loginSlowdown
        self.checking = checking
    }

    package var endpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.post("login", use: login)
        routes.post("logout", use: logout)
        routes.get("me", use: me)
        routes.get("operators", use: list)
        routes.post("operators", use: create)
        routes.post("operators/:name/disable", use: disable)
        routes.get("tokens", use: tokens)
        routes.post("tokens", use: createToken)
        routes.delete("tokens/:tokenId", use: revokeToken)
        return routes
    }

    // MARK: Console session

    @Sendable package func login(_ request: Request, context: Context) async throws -> Response {
        let body = try await request.decodeJSON(LoginBody.self, limit: maxBodySize)
        let name = String(body.name.prefix(64))
        let address = context.clientAddress
        let (nameKey, addressKey, pairKey) = ("name:\(name)", "address:\(address)", "pair:\(name)\u{0}\(address)")
        // Each attempt is a failure until it succeeds: counted before the check, so attempts
        // sent at once are held to the budget.
        try addressFailures.reserve(addressKey, what: "logins from your address")
        do {
            try pairFailures.reserve(pairKey, what: "logins for this name from your address")
        } catch {
            addressFailures.forgive(addressKey)
            throw error
        }
        // Only a wrong password keeps its failure: a login that succeeded, or was not checked
        // (the line was full, the DB did not answer), gives it back.
        var checked: Bool?
        defer {
            switch checked {
            case false?:
                break
            case true?:
                addressFailures.forgive(addressKey)
                pairFailures.reset(pairKey)
            case nil:
                addressFailures.forgive(addressKey)
                pairFailures.forgive(pairKey)
            }
        }
        // A name guessed at from everywhere is slowed, never locked.
        if nameFailures.isOver(nameKey) { try await Task.sleep(for: slowdown) }
        let account = Operator.isValidName(body.name) ? try await store.operatorAccount(named: body.name) : nil
        // A flood of logins waits in a bounded line, shared between addresses.
        guard checking.take(address) else {
            throw ExamBellError(
                status: 503, code: "busy", message: "Too many logins are being checked at once; try again in a few seconds."
            )
        }
        defer { checking.give(address) }
        let matched = try await passwords.verify(String(body.password.prefix(200)), hash: account?.passwordHash)
        guard matched, let account = account?.account, !account.disabled else {
            checked = false
            nameFailures.fail(nameKey)
            throw ExamBellError.unauthorized("Wrong name or password, or the operator is disabled.")
        }
        checked = true
        let secret = SecretToken.random()
        let csrfToken = SecretToken.random()
        let expiresAt = Timestamp.now().adding(seconds: sessionLifetime.components.seconds)
        try await store.createSession(secretHash: SecretToken.hash(secret), operatorName: account.name, csrfToken: csrfToken, expiresAt: expiresAt)
        context.logger.info("operator logged in", metadata: ["operator": "\(account.name)", "role": "\(account.role.rawValue)"])
        var response = try json(MeView(name: account.name, role: account.role.rawValue, csrfToken: csrfToken))
        response.setCookie(cookie(secret, maxAge: Int(sessionLifetime.components.seconds)))
        return response
    }

    @Sendable package func logout(_ request: Request, context: Context) async throws -> Response {
        if let secret = request.cookies[OperatorAuth.cookieName]?.value, !secret.isEmpty {
            try await store.deleteSession(secretHash: SecretToken.hash(secret))
        }
        var response = try json(["status": "logged_out"])
        response.setCookie(cookie("", maxAge: 0))
        return response
    }

    @Sendable package func me(_ request: Request, context: Context) async throws -> JSONResponse<MeView> {
        let principal = try await auth.require(request, context: context, .read)
        var csrfToken: String?
        if request.bearerToken == nil, let secret = request.cookies[OperatorAuth.cookieName]?.value {
            csrfToken = try await store.session(secretHash: SecretToken.hash(secret), now: .now())?.csrfToken
        }
        return JSONResponse(value: MeView(name: principal.name, role: principal.role.rawValue, csrfToken: csrfToken))
    }

    // MARK: Operators (admin)

    @Sendable package func list(_ request: Request, context: Context) async throws -> JSONResponse<OperatorListView> {
        _ = try await auth.require(request, context: context, .manage)
        return JSONResponse(value: OperatorListView(operators: try await store.operators().map(OperatorView.init)))
    }

    @Sendable package func create(_ request: Request, context: Context) async throws -> JSONResponse<OperatorView> {
        let caller = try await auth.require(request, context: context, .manage)
        let body = try await request.decodeJSON(NewOperatorBody.self, limit: maxBodySize)
        let account = try await OperatorAdmin.add(name: body.name, password: body.password, role: body.role, store: store, passwords: passwords)
        context.logger.info("operator added", metadata: ["operator": "\(account.name)", "role": "\(account.role.rawValue)", "by": "\(caller.name)"])
        return JSONResponse(status: .created, value: OperatorView(account))
    }

    @Sendable package func disable(_ request: Request, context: Context) async throws -> JSONResponse<OperatorView> {
        let caller = try await auth.require(request, context: context, .manage)
        let name = try context.parameters.require("name")
        try Operator.validateName(name)
        guard name != caller.name || caller.isBootstrap else {
            throw ExamBellError.conflict(code: "cannot_disable_self", "An operator cannot disable itself; ask another admin.")
        }
        let account = try await store.disableOperator(named: name)
        context.logger.info("operator disabled", metadata: ["operator": "\(name)", "by": "\(caller.name)"])
        return JSONResponse(value: OperatorView(account))
    }

    // MARK: API tokens (each operator's own)

    @Sendable package func tokens(_ request: Request, context: Context) async throws -> JSONResponse<TokenListView> {
        let caller = try await namedOperator(request, context: context)
        return JSONResponse(value: TokenListView(tokens: try await store.tokens(of: caller.name).map(TokenView.init)))
    }

    @Sendable package func createToken(_ request: Request, context: Context) async throws -> JSONResponse<NewTokenView> {
        let caller = try await namedOperator(request, context: context)
        let body = try await request.decodeJSON(TokenBody.self, limit: maxBodySize)
        let label = body.label.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !label.isEmpty, TextLimit.fits(label, characters: 100) else {
            throw ExamBellError.badRequest(code: "invalid_label", "label must be 1 to 100 characters.")
        }
        let id = "tok_" + SecretToken.random().prefix(12)
        let secret = SecretToken.random(prefix: OperatorAuth.tokenPrefix)
        let now = Timestamp.now()
        try await store.createToken(id: id, secretHash: SecretToken.hash(secret), operatorName: caller.name, label: label, at: now)
        context.logger.info("API token made", metadata: ["operator": "\(caller.name)", "tokenId": "\(id)"])
        return JSONResponse(status: .created, value: NewTokenView(id: id, label: label, token: secret, createdAt: now.iso8601))
    }

    @Sendable package func revokeToken(_ request: Request, context: Context) async throws -> JSONResponse<[String: String]> {
        let caller = try await namedOperator(request, context: context)
        let id = try context.parameters.require("tokenId")
        guard id.utf8.count <= 64 else { throw ExamBellError.badRequest(code: "invalid_id", "No such token id.") }
        try await store.revokeToken(id: id, of: caller.name, at: .now())
        context.logger.info("API token revoked", metadata: ["operator": "\(caller.name)", "tokenId": "\(id)"])
        return JSONResponse(value: ["id": id, "status": "revoked"])
    }

    // MARK: Helpers

    /// Tokens belong to a named operator: the bootstrap admin token has none.
    private func namedOperator(_ request: Request, context: Context) async throws -> Principal {
        let caller = try await auth.require(request, context: context, .read)
        guard !caller.isBootstrap else {
            throw ExamBellError.forbidden("The admin token is no operator; log in as a named operator to manage API tokens.")
        }
        return caller
    }

    private func cookie(_ value: String, maxAge: Int) -> Cookie {
        Cookie(
            name: OperatorAuth.cookieName, value: value, maxAge: maxAge, path: "/", secure: secureCookies, httpOnly: true, sameSite: .strict
        )
    }

    private func json<T: Encodable>(_ value: T) throws -> Response {
        let data = try JSONEncoder().encode(value)
        return Response(
            status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }
}

package struct LoginBody: Decodable {
    package var name: String
    package var password: String
}

package struct NewOperatorBody: Decodable {
    package var name: String
    package var password: String
    package var role: String
}

package struct TokenBody: Decodable {
    package var label: String
}

package struct MeView: Codable, Sendable {
    package var name: String
    package var role: String
    package var csrfToken: String?
}

package struct OperatorView: Codable, Sendable {
    package var name: String
    package var role: String
    package var disabled: Bool
    package var createdAt: String

    package init(_ account: Operator) {
        self.init(name: account.name, role: account.role.rawValue, disabled: account.disabled, createdAt: account.createdAt.iso8601)
    }

    package init(name: String, role: String, disabled: Bool, createdAt: String) {
        self.name = name
        self.role = role
        self.disabled = disabled
        self.createdAt = createdAt
    }
}

package struct OperatorListView: Codable, Sendable {
    package var operators: [OperatorView]
}

package struct TokenView: Codable, Sendable {
    package var id: String
    package var label: String
    package var createdAt: String
    package var lastUsedAt: String?

    package init(_ info: APITokenInfo) {
        id = info.id
        label = info.label
        createdAt = info.createdAt.iso8601
        lastUsedAt = info.lastUsedAt?.iso8601
    }
}

package struct TokenListView: Codable, Sendable {
    package var tokens: [TokenView]
}

package struct NewTokenView: Codable, Sendable {
    package var id: String
    package var label: String
    /// Shown once: only its hash is kept.
    package var token: String
    package var createdAt: String
}
