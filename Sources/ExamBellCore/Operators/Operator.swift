/// Named operators (DESIGN "Operators"): who may do what on the console and the API.
///
/// An operator has a name, a role and a bcrypt password hash; a console session (a cookie)
/// or an API token (`Authorization: Bearer ebt_…`) stands for it. The DB keeps only hashes
/// of session ids and tokens, so a copy of the DB lets no one in.

/// What a role may do.
public enum Permission: Sendable, Hashable {
    /// Read exams, rosters, delivery, the audit log.
    case read
    /// Create, register, start, change time, end, announce, decide late submissions.
    case operate
    /// Manage operators.
    case manage
}

/// An operator's role: `admin` ⊃ `operator` ⊃ `viewer`.
public enum OperatorRole: String, Sendable, Hashable, Codable, CaseIterable {
    case admin
    case `operator`
    case viewer

    public func permits(_ permission: Permission) -> Bool {
        switch (self, permission) {
        case (.admin, _): true
        case (.operator, .read), (.operator, .operate): true
        case (.viewer, .read): true
        default: false
        }
    }
}

/// An operator account as the API shows it (never its hash).
public struct Operator: Sendable, Hashable, Codable {
    public var name: String
    public var role: OperatorRole
    public var disabled: Bool
    public var createdAt: Timestamp

    public init(name: String, role: OperatorRole, disabled: Bool, createdAt: Timestamp) {
        self.name = name
        self.role = role
        self.disabled = disabled
        self.createdAt = createdAt
    }

    /// Operator names: `^[A-Za-z0-9_.-]{1,64}$` (they appear in audit rows and URLs).
    public static func validateName(_ name: String) throws(ExamBellError) {
        guard isValidName(name) else { throw .badRequest(code: "invalid_name", "An operator's name must match ^[A-Za-z0-9_.-]{1,64}$.") }
    }

    /// Whether `name` matches `^[A-Za-z0-9_.-]{1,64}$`: the id pattern plus dots (`j.kim`).
    public static func isValidName(_ name: String) -> Bool {
        name.utf8.count <= 64 && !name.isEmpty
            && name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { $0.isEmpty || Identifier.isValid(String($0)) }
    }

    /// Passwords: 10 to 72 bytes (bcrypt reads no further than 72).
    public static func validatePassword(_ password: String) throws(ExamBellError) {
        let bytes = password.utf8.count
        guard bytes >= 10, bytes <= 72 else {
            throw .badRequest(code: "invalid_password", "A password must be 10 to 72 bytes long.")
        }
    }
}

/// Who made a request: an operator, or the bootstrap admin token (named `admin`).
public struct Principal: Sendable, Hashable {
    public var name: String
    public var role: OperatorRole
    /// True for the `--admin-token` bootstrap, which is no operator row.
    public var isBootstrap: Bool

    public init(name: String, role: OperatorRole, isBootstrap: Bool = false) {
        self.name = name
        self.role = role
        self.isBootstrap = isBootstrap
    }
}

/// A console session as stored: the operator and its CSRF token, until `expiresAt`.
public struct OperatorSession: Sendable, Hashable {
    public var principal: Principal
    public var csrfToken: String
    public var expiresAt: Timestamp

    public init(principal: Principal, csrfToken: String, expiresAt: Timestamp) {
        self.principal = principal
        self.csrfToken = csrfToken
        self.expiresAt = expiresAt
    }
}

/// An API token as listed (the secret itself is shown once, when made).
public struct APITokenInfo: Sendable, Hashable, Codable {
    public var id: String
    public var label: String
    public var createdAt: Timestamp
    public var lastUsedAt: Timestamp?

    public init(id: String, label: String, createdAt: Timestamp, lastUsedAt: Timestamp?) {
        self.id = id
        self.label = label
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
    }
}

/// The DB's role of operators, their console sessions and API tokens. Session ids and
/// tokens arrive already hashed (`secretHash`); a disabled operator's sessions and tokens
/// find no one.
public protocol OperatorStore: Sendable {
    /// Adds an operator; 409 `operator_exists` when the name is taken.
    func createOperator(_ account: Operator, passwordHash: String) async throws
    /// The operator and its password hash, disabled or not.
    func operatorAccount(named name: String) async throws -> (account: Operator, passwordHash: String)?
    /// Every operator, by name.
    func operators() async throws -> [Operator]
    /// Disables an operator and ends its sessions; 404 `operator_not_found`. Idempotent.
    func disableOperator(named name: String) async throws -> Operator

    /// Stores a console session.
    func createSession(secretHash: String, operatorName: String, csrfToken: String, expiresAt: Timestamp) async throws
    /// The session of an active operator, unexpired at `now`.
    func session(secretHash: String, now: Timestamp) async throws -> OperatorSession?
    /// Ends a session (logout). Idempotent.
    func deleteSession(secretHash: String) async throws

    /// Stores an API token of an operator.
    func createToken(id: String, secretHash: String, operatorName: String, label: String, at: Timestamp) async throws
    /// The active operator whose unrevoked token has this hash; records its use at `now`.
    func tokenOwner(secretHash: String, now: Timestamp) async throws -> Principal?
    /// An operator's unrevoked tokens, newest first.
    func tokens(of operatorName: String) async throws -> [APITokenInfo]
    /// Revokes one of the operator's tokens; 404 `token_not_found` when it has none by that id.
    func revokeToken(id: String, of operatorName: String, at: Timestamp) async throws
}
