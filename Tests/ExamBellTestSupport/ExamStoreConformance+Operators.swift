import ExamBellCore
import Testing

/// Operators' accounts, sessions and API tokens.
extension ExamStoreConformance {
    static let operatorCases: [Case] = [
        Case(name: "operators: accounts, sessions and tokens; disabling ends both") { store in
            let alice = Operator(name: "alice", role: .operator, disabled: false, createdAt: t0)
            try await store.createOperator(alice, passwordHash: "hash-a")
            try await store.createOperator(Operator(name: "bob", role: .viewer, disabled: false, createdAt: t0), passwordHash: "hash-b")
            let taken = await #expect(throws: StoreError.self) { try await store.createOperator(alice, passwordHash: "x") }
            #expect(taken?.code == "operator_exists")
            #expect(try await store.operatorAccount(named: "alice")?.passwordHash == "hash-a")
            #expect(try await store.operatorAccount(named: "nobody") == nil)
            #expect(try await store.operators().map(\.name) == ["alice", "bob"])
            // A session holds until it expires; a token until it is revoked.
            try await store.createSession(secretHash: "s1", operatorName: "alice", csrfToken: "c1", expiresAt: end)
            #expect(try await store.session(secretHash: "s1", now: t0)?.principal == Principal(name: "alice", role: .operator))
            #expect(try await store.session(secretHash: "s1", now: t0)?.csrfToken == "c1")
            #expect(try await store.session(secretHash: "s1", now: end) == nil, "expired at its end")
            #expect(try await store.session(secretHash: "other", now: t0) == nil)
            try await store.createToken(id: "t1", secretHash: "h1", operatorName: "alice", label: "cron", at: t0)
            try await store.createToken(id: "t2", secretHash: "h2", operatorName: "alice", label: "ci", at: t0.adding(seconds: 1))
            #expect(try await store.tokenOwner(secretHash: "h1", now: end)?.name == "alice")
            #expect(try await store.tokens(of: "alice").map(\.id) == ["t2", "t1"], "newest first")
            #expect(try await store.tokens(of: "alice").last?.lastUsedAt == end, "use is recorded")
            #expect(try await store.tokens(of: "bob").isEmpty)
            let notBobs = await #expect(throws: StoreError.self) { try await store.revokeToken(id: "t1", of: "bob", at: end) }
            #expect(notBobs?.code == "token_not_found")
            try await store.revokeToken(id: "t1", of: "alice", at: end)
            #expect(try await store.tokenOwner(secretHash: "h1", now: end) == nil)
            #expect(try await store.tokens(of: "alice").map(\.id) == ["t2"])
            // Disabled: the session is gone, the other token finds no one; the account stays listed.
            #expect(try await store.disableOperator(named: "alice").disabled)
            #expect(try await store.session(secretHash: "s1", now: t0) == nil)
            #expect(try await store.tokenOwner(secretHash: "h2", now: end) == nil)
            #expect(try await store.operators().map(\.disabled) == [true, false])
            let unknown = await #expect(throws: StoreError.self) { _ = try await store.disableOperator(named: "nobody") }
            #expect(unknown?.code == "operator_not_found")
            try await store.createSession(secretHash: "s2", operatorName: "bob", csrfToken: "c2", expiresAt: end)
            try await store.deleteSession(secretHash: "s2")
            #expect(try await store.session(secretHash: "s2", now: t0) == nil, "logged out")
        }
    ]
}
