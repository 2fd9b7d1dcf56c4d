import ExamBellCore
import ExamBellRuntime

/// What the API and `exambell operator` share.
public enum OperatorAdmin {
    /// Validates and adds an operator: 400 for a bad name, role or password, 409 for a taken name.
    public static func add(
        name: String, password: String, role: String, store: any OperatorStore, passwords: Passwords
    ) async throws -> Operator {
        try Operator.validateName(name)
        guard let role = OperatorRole(rawValue: role) else {
            throw ExamBellError.badRequest(code: "invalid_role", "role must be admin, operator or viewer.")
        }
        try Operator.validatePassword(password)
        let account = Operator(name: name, role: role, disabled: false, createdAt: .now())
        try await store.createOperator(account, passwordHash: try await passwords.hash(password))
        return account
    }
}
