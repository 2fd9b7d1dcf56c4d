import ExamBellCore

/// The roster of an exam as proctors and the operator see it: every candidate with status,
/// last activity, answered count, connection and ack, from the DB and the state store.
///
/// One builder serves `GET /api/exams/{id}/roster` (web node) and the live roster frames a
/// socket node pushes to its proctors (`RosterPublisher`).
struct RosterBuilder: Sendable {
    let backends: ExamBellBackends

    /// Presence older than this is from a node that stopped without saying so.
    static func presenceCutoff() -> Timestamp { Timestamp.now().adding(seconds: -15) }

    func roster(of plan: ExamPlan) async throws -> RosterView {
        let examId = plan.examId
        async let candidatesRead = backends.store.candidates(examId: examId)
        async let answeredRead = backends.store.answeredCounts(examId: examId)
        async let presenceRead = backends.state.presence(examId: examId, freshAfter: Self.presenceCutoff())
        async let acknowledgedRead = backends.state.acknowledged(examId: examId)
        let (candidates, answered) = try await (candidatesRead, answeredRead)
        let (presence, acknowledged) = try await (presenceRead, acknowledgedRead)
        let cached = try await backends.state.candidates(candidates.map(\.candidateId))
        return RosterView(
            examId: examId, status: plan.status.rawValue, endDatetime: plan.endDatetime?.iso8601, itemCount: plan.items.count,
            candidates: candidates.map { candidate in
                let live = cached[candidate.candidateId]
                // The later activity of the two: answers saved go to the DB, final sync may lag.
                let lastActive = [live?.lastActiveTime, candidate.lastActiveTime].compactMap { $0 }.max()
                let status = [live?.status, candidate.status].compactMap { $0 }.max { $0.rank < $1.rank } ?? candidate.status
                return .init(
                    candidateId: candidate.candidateId, name: candidate.name, status: status.rawValue,
                    lastActiveTime: lastActive?.iso8601,
                    connected: presence.candidates.contains(candidate.candidateId),
                    acknowledged: acknowledged.contains(candidate.candidateId),
                    answered: answered[candidate.candidateId] ?? 0
                )
            },
            proctorsConnected: presence.proctors.count
        )
    }
}
