import ExamBellCore
import SQLKit

/// `OperatorStore`: operator accounts, console sessions and API tokens.
extension SQLExamStore {
    public func createOperator(_ account: Operator, passwordHash: String) async throws {
        try await transaction { db in
            if try await db.raw("SELECT name FROM exam_operator WHERE name = \(bind: account.name)").first() != nil {
                throw StoreError.conflict(code: "operator_exists", message: "An operator named \(account.name) exists already.")
            }
            try await db.raw(
                """
                INSERT INTO exam_operator (name, role, password_hash, disabled, created_at)
                VALUES (\(bind: account.name), \(bind: account.role.rawValue), \(bind: passwordHash), \(bind: account.disabled ? 1 : 0),
                    \(bind: account.createdAt.iso8601))
                """
            ).run()
        }
    }

    public func operatorAccount(named name: String) async throws -> (account: Operator, passwordHash: String)? {
        try await connection { db in
            guard let row = try await db.raw("SELECT * FROM exam_operator WHERE name = \(bind: name)").first() else { return nil }
            return (try Self.operatorAccount(from: row), try row.decode(column: "password_hash", as: String.self))
        }
    }

    public func operators() async throws -> [Operator] {
        try await connection { db in
            try await db.raw("SELECT * FROM exam_operator ORDER BY name").all().map(Self.operatorAccount(from:))
        }
    }

    public func disableOperator(named name: String) async throws -> Operator {
        try await transaction { db in
            guard let row = try await db.raw("SELECT * FROM exam_operator WHERE name = \(bind: name)").first() else {
                throw StoreError.notFound(code: "operator_not_found", message: "No operator named \(name).")
            }
            try await db.raw("UPDATE exam_operator SET disabled = 1 WHERE name = \(bind: name)").run()
            try await db.raw("DELETE FROM exam_operator_session WHERE operator_name = \(bind: name)").run()
            var account = try Self.operatorAccount(from: row)
            account.disabled = true
            return account
        }
    }

    public func createSession(secretHash: String, operatorName: String, csrfToken: String, expiresAt: Timestamp) async throws {
        try await connection { db in
            try await db.raw(
                """
                INSERT INTO exam_operator_session (secret_hash, operator_name, csrf_token, expires_at)
                VALUES (\(bind: secretHash), \(bind: operatorName), \(bind: csrfToken), \(bind: expiresAt.iso8601))
                """
            ).run()
        }
    }

    public func session(secretHash: String, now: Timestamp) async throws -> OperatorSession? {
        try await connection { db in
            let row = try await db.raw(
                """
                SELECT s.csrf_token, s.expires_at, o.name, o.role FROM exam_operator_session s
                JOIN exam_operator o ON o.name = s.operator_name
                WHERE s.secret_hash = \(bind: secretHash) AND o.disabled = 0 AND s.expires_at > \(bind: now.iso8601)
                """
            ).first()
            guard let row, let expiresAt = try Self.timestamp(row, "expires_at") else { return nil }
            return OperatorSession(
                principal: try Self.principal(from: row), csrfToken: try row.decode(column: "csrf_token", as: String.self), expiresAt: expiresAt
            )
        }
    }

    public func deleteSession(secretHash: String) async throws {
        try await connection { db in
            try await db.raw("DELETE FROM exam_operator_session WHERE secret_hash = \(bind: secretHash)").run()
        }
    }

    public func createToken(id: String, secretHash: String, operatorName: String, label: String, at: Timestamp) async throws {
        try await connection { db in
            try await db.raw(
                """
                INSERT INTO exam_operator_token (id, secret_hash, operator_name, label, created_at)
                VALUES (\(bind: id), \(bind: secretHash), \(bind: operatorName), \(bind: label), \(bind: at.iso8601))
                """
            ).run()
        }
    }

    public func tokenOwner(secretHash: String, now: Timestamp) async throws -> Principal? {
        try await connection { db in
            let row = try await db.raw(
                """
                SELECT o.name, o.role FROM exam_operator_token t JOIN exam_operator o ON o.name = t.operator_name
                WHERE t.secret_hash = \(bind: secretHash) AND t.revoked_at IS NULL AND o.disabled = 0
                """
            ).first()
            guard let row else { return nil }
            try await db.raw(
                "UPDATE exam_operator_token SET last_used_at = \(bind: now.iso8601) WHERE secret_hash = \(bind: secretHash)"
            ).run()
            return try Self.principal(from: row)
        }
    }

    public func tokens(of operatorName: String) async throws -> [APITokenInfo] {
        try await connection { db in
            try await db.raw(
                """
                SELECT * FROM exam_operator_token WHERE operator_name = \(bind: operatorName) AND revoked_at IS NULL
                ORDER BY created_at DESC, id
                """
            ).all().map { row in
                APITokenInfo(
                    id: try row.decode(column: "id", as: String.self), label: try row.decode(column: "label", as: String.self),
                    createdAt: try Self.timestamp(row, "created_at") ?? Timestamp(secondsSince1970: 0),
                    lastUsedAt: try Self.timestamp(row, "last_used_at")
                )
            }
        }
    }

    public func revokeToken(id: String, of operatorName: String, at: Timestamp) async throws {
        try await transaction { db in
            let row = try await db.raw(
                """
                SELECT id FROM exam_operator_token
                WHERE id = \(bind: id) AND operator_name = \(bind: operatorName) AND revoked_at IS NULL
                """
            ).first()
            guard row != nil else { throw StoreError.notFound(code: "token_not_found", message: "You have no API token \(id).") }
            try await db.raw("UPDATE exam_operator_token SET revoked_at = \(bind: at.iso8601) WHERE id = \(bind: id)").run()
        }
    }

    // MARK: Rows

    static func operatorAccount(from row: any SQLRow) throws -> Operator {
        let principal = try principal(from: row)
        return Operator(
            name: principal.name, role: principal.role, disabled: try row.decode(column: "disabled", as: Int.self) != 0,
            createdAt: try timestamp(row, "created_at") ?? Timestamp(secondsSince1970: 0)
        )
    }

    static func principal(from row: any SQLRow) throws -> Principal {
        let name = try row.decode(column: "name", as: String.self)
        let roleText = try row.decode(column: "role", as: String.self)
        guard let role = OperatorRole(rawValue: roleText) else {
            throw StoreError.unavailable("exam_operator \(name) has an unknown role \(roleText).")
        }
        return Principal(name: name, role: role)
    }
}
