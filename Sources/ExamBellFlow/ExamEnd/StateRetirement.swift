import ExamBellCore
import Logging

/// State that outlives its use goes: once an exam's sessions have closed (`closeAfter` after
/// its end, when no page of it can join or write any more), final sync confirms it one last
/// time and retires its state. The DB keeps what it has no columns for (time acks, the
/// announcements seen, connection spans: `StateStore.archivedHashes`), the state store drops
/// every key of the exam but its plan key (its candidates' keys, every hash), and the DB marks
/// the exam retired. The DB stays the truth for everything the keys said; readers of the
/// archived hashes find them in the DB (`ArchivedStateStore`); a late page already gets
/// `session_closed`. A node that ran a season of exams holds the state of the running ones.
extension FinalSync {
    /// Exams one pass retires at most (the rest wait for the next pass).
    static package let retiredPerPass = 5
    /// Keys one delete removes at most.
    static package let keysPerDelete = 1000

    /// Retires the state of ended exams whose sessions have closed; returns the exams retired.
    @discardableResult
    public func retireClosed() async -> [String] {
        guard let closeAfter else { return [] }
        let closedBefore = Timestamp.now().adding(seconds: -Int64(closeAfter.inSeconds.rounded(.up)))
        var retired: [String] = []
        do {
            for examId in try await store.examsToRetire(endedBefore: closedBefore, limit: Self.retiredPerPass) {
                if try await retire(examId: examId) { retired.append(examId) }
            }
        } catch is CancellationError {
        } catch {
            logger.warning("state not retired yet", metadata: ["error": "\(error)"])
        }
        return retired
    }

    /// Retires one exam whose sessions closed, under its sync lock: reconciled once more (the
    /// last acks, locks and clocks reach the DB); only when that found nothing left to copy,
    /// its archived hashes are kept in the DB, its keys deleted and the exam marked retired.
    /// False when it is left for a later pass (another node holds the lock, or the
    /// reconcile copied something). A retire cut short is done again whole by the next pass.
    package func retire(examId: String) async throws -> Bool {
        try await withSyncLock(examId: examId) { try await retireLocked(examId: examId) } ?? false
    }

    private func retireLocked(examId: String) async throws -> Bool {
        guard let plan = try await store.exam(examId), sessionsClosed(plan) else { return false }
        guard try await reconcileLocked(examId: examId) == Report() else { return false }
        var hashes: [String: [String: String]] = [:]
        for key in ArchivedStateStore.archivedHashes(examId: examId) {
            let fields = try await state.fields(key)
            if !fields.isEmpty { hashes[key] = fields }
        }
        try await store.archiveState(examId: examId, hashes: hashes)
        let keys =
            try await store.candidateIds(examId: examId).map(CandidateStateValue.key) + ArchivedStateStore.retiredHashes(examId: examId)
            + (try await state.presenceKeys(examId: examId))
        for start in stride(from: 0, to: keys.count, by: Self.keysPerDelete) {
            try await state.delete(Array(keys[start..<min(start + Self.keysPerDelete, keys.count)]))
        }
        try await store.markStateRetired(examId: examId, at: .now())
        logger.info(
            "exam state retired",
            metadata: ["examId": "\(examId)", "keys": "\(keys.count)", "archived": "\(hashes.values.reduce(0) { $0 + $1.count })"])
        return true
    }

    /// Whether the exam's sessions have closed: it ended `closeAfter` ago or more.
    func sessionsClosed(_ plan: ExamPlan) -> Bool {
        guard let closeAfter, plan.status == .completed, let end = plan.endDatetime else { return false }
        return end < Timestamp.now().adding(seconds: -Int64(closeAfter.inSeconds.rounded(.up)))
    }
}
