import ExamBellCore

/// Before the end: registering people and starting an exam, each written to the DB (the truth)
/// and then to the state store, which late readers and socket nodes read. A state-store write
/// that fails is left to final sync, which mirrors the DB's plan and candidates.
public struct ExamSetupService: Sendable {
    package let store: any ExamPlanStore & PeopleStore
    package let state: any StateStore

    package init(store: any ExamPlanStore & PeopleStore, state: any StateStore) {
        self.store = store
        self.state = state
    }

    /// Registers candidates; a running exam's new candidates get their state keys at once.
    public func registerCandidates(examId: String, _ people: [Registrant], actor: String) async throws -> RegistrationResult {
        let result = try await store.registerCandidates(examId: examId, people, actor: actor, at: .now())
        if let plan = try await store.exam(examId), plan.status == .inProgress {
            let value = CandidateStateValue(status: .inProgress, lastActiveTime: nil)
            try? await state.set(people.map { (CandidateStateValue.key($0.id), value.json) })
        }
        return result
    }

    /// Starts the exam; the state store learns the start with every candidate's key.
    public func start(examId: String, actor: String) async throws -> ExamPlan {
        let plan = try await store.startExam(examId: examId, actor: actor, at: .now())
        let candidates = try await store.candidates(examId: examId)
        try? await state.mirror(plan, candidates: candidates)
        return plan
    }
}
