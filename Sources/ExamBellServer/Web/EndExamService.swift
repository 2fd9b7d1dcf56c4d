import ExamBellCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging

/// The scenario of seed §2 on the web server: validate → DB and state store in parallel →
/// publish after the DB commit → (socket broadcast happens on the socket nodes) → final sync.
///
/// The DB decides: its conditional update lets exactly one of concurrent requests end the
/// exam; every other request answers `already_completed` with the winner's end time.
public struct EndExamService: Sendable {
    /// What an end request got.
    public struct Outcome: Sendable, Hashable {
        public var plan: ExamPlan
        /// True for the one request that ended the exam.
        public var ended: Bool
    }

    let backends: ExamBellBackends
    let outbox: OutboxRelay
    let finalSync: FinalSync
    let outboxLease: Duration
    let syncAfterEnd: Duration?
    let logger: Logger
    let metrics: NodeMetrics

    /// Ends exam `examId` for `actor`, with an optional reason. `requestLogger` carries the
    /// request id of the call; the end's log lines carry it and the end's id
    /// (`examId@endDatetime`), which the socket nodes log when they broadcast it.
    public func end(examId: String, actor: String, reason: String?, requestLogger: Logger? = nil) async throws -> Outcome {
        let logger = requestLogger ?? self.logger
        let started = metrics.endStarted(examId)
        defer { metrics.endRequest.recordInterval(since: started) }
        try Identifier.validate(examId, field: "examId")
        // Validation (seed §4.1): the exam exists and is in a state that can end.
        guard let plan = try await backends.store.exam(examId) else { throw ExamBellError.examNotFound(examId) }
        if plan.status == .completed { return Outcome(plan: plan, ended: false) }
        guard plan.status == .inProgress else { throw ExamBellError.wrongState(examId, is: plan.status, action: "end") }
        let candidateIds = try await backends.store.candidateIds(planId: examId)
        let validated = ContinuousClock.now

        await Self.slowPoint("slow-end")
        let endDatetime = Timestamp.now()
        let leaseUntil = endDatetime.adding(seconds: outboxLease.components.seconds)
        // par: the DB change and the state-store change at once.
        async let stateWritten = writeCompleted(examId: examId, candidateIds: candidateIds, at: endDatetime)
        let transition: EndTransition
        do {
            transition = try await backends.store.endExam(
                planId: examId, at: endDatetime, actor: actor, reason: reason, leaseUntil: leaseUntil
            )
        } catch {
            // Nothing half-applied: the DB did not change, so the state store goes back too.
            if await stateWritten { await restore(plan: plan, candidateIds: candidateIds) }
            throw error
        }
        let stateOK = await stateWritten

        switch transition {
        case .alreadyCompleted(let winner):
            // A concurrent request won; our parallel write may carry our time, so write the truth.
            if stateOK, let end = winner.endDatetime {
                _ = await writeCompleted(examId: examId, candidateIds: candidateIds, at: end)
            }
            return Outcome(plan: winner, ended: false)
        case .ended(let ended, let entry):
            let committed = ContinuousClock.now
            Self.faultPoint("after-commit")
            // Publish only now that the DB committed; a failure here leaves the row to the relay.
            await outbox.deliver(entry, stateAlreadyWritten: stateOK)
            let published = ContinuousClock.now
            logger.info(
                "exam ended",
                metadata: [
                    "examId": "\(examId)", "endId": "\(examId)@\(endDatetime.iso8601)", "actor": "\(actor)",
                    "candidates": "\(candidateIds.count)",
                    "validateMs": "\(Self.ms(validated - started))", "commitMs": "\(Self.ms(committed - validated))",
                    "publishMs": "\(Self.ms(published - committed))",
                ]
            )
            if let delay = syncAfterEnd {
                Task {
                    try? await Task.sleep(for: delay)
                    await finalSync.reconcile(planId: examId)
                }
            }
            return Outcome(plan: ended, ended: true)
        }
    }

    static func ms(_ duration: Duration) -> String {
        String(format: "%.1f", Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15)
    }

    /// Test-only crash point: in debug builds, `EXAMBELL_TEST_FAULT=<name>` kills the process
    /// here (SIGKILL, as a crash would), to prove the outbox covers a web node that dies
    /// between its commit and its publish, and pending replay a socket node that dies
    /// mid-broadcast. `<name>@<file>` fires once: only while the file does not exist yet.
    /// Release builds do not contain it.
    static func faultPoint(_ name: String) {
        #if DEBUG
        guard let fault = ProcessInfo.processInfo.environment["EXAMBELL_TEST_FAULT"] else { return }
        let parts = fault.split(separator: "@", maxSplits: 1).map(String.init)
        guard parts.first == name else { return }
        if parts.count == 2 {
            guard !FileManager.default.fileExists(atPath: parts[1]) else { return }
            FileManager.default.createFile(atPath: parts[1], contents: nil)
        }
        kill(getpid(), SIGKILL)
        #endif
    }

    /// Test-only delay: in debug builds, `EXAMBELL_TEST_FAULT=<name>` holds an end here for
    /// 1.5 s, so a test can stop the node while the request is in flight.
    static func slowPoint(_ name: String) async {
        #if DEBUG
        if ProcessInfo.processInfo.environment["EXAMBELL_TEST_FAULT"] == name {
            try? await Task.sleep(for: .milliseconds(1500))
        }
        #endif
    }

    /// Writes the plan key and every candidate key as completed at `time` in one round trip.
    /// Returns false (and logs) when the state store cannot be reached.
    private func writeCompleted(examId: String, candidateIds: [String], at time: Timestamp) async -> Bool {
        do {
            try await backends.state.writeEnded(planId: examId, candidateIds: candidateIds, at: time)
            return true
        } catch {
            logger.warning("state store write failed; the outbox relay will retry", metadata: ["examId": "\(examId)", "error": "\(error)"])
            return false
        }
    }

    /// Puts the state store back to the running exam after the DB refused the end (the DB
    /// cannot be read then); final sync later restores the candidates' last activity.
    private func restore(plan: ExamPlan, candidateIds: [String]) async {
        do {
            try await backends.state.writeSame(
                plan: plan.planId, PlanStateValue(plan), candidateIds: candidateIds,
                CandidateStateValue(status: .inProgress, lastActiveTime: nil)
            )
        } catch {
            logger.warning("could not restore the state store; final sync will", metadata: ["examId": "\(plan.planId)"])
        }
    }
}

extension StateStore {
    /// The state-store side of an end: the plan and every candidate completed at `time`, in
    /// one round trip. Every candidate key gets the same value, encoded once.
    func writeEnded(planId: String, candidateIds: [String], at time: Timestamp) async throws {
        try await writeSame(
            plan: planId, PlanStateValue(status: .completed, endDatetime: time),
            candidateIds: candidateIds, CandidateStateValue(status: .completed, lastActiveTime: time)
        )
    }

    /// The plan's key and the same value for every candidate key, in one round trip.
    func writeSame(plan planId: String, _ plan: PlanStateValue, candidateIds: [String], _ candidate: CandidateStateValue)
        async throws
    {
        let value = candidate.json
        var values: [(key: String, value: String)] = [(PlanStateValue.key(planId), plan.json)]
        values.reserveCapacity(candidateIds.count + 1)
        for id in candidateIds { values.append((CandidateStateValue.key(id), value)) }
        try await set(values)
    }
}
