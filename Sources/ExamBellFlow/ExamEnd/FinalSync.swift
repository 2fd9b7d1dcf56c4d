import ExamBellCore
import ExamBellRuntime
import Logging
import ServiceLifecycle
import Synchronization

/// The final sync of seed §4.3.2: after each end, and periodically, Redis and the DB agree.
///
/// Redis → DB: candidates' `last_active_time` and status (only forward) flow into the DB.
/// DB → Redis: plan and candidate keys that are missing or drifted are rewritten from the
/// DB, which is the truth.
///
/// It runs as a service of the node: its periodic pass, and the syncs the end service asks
/// for after each end (`scheduleSync`), which reach it through a stream it owns.
///
/// The periodic pass costs what changes, not what is history: it reconciles running exams,
/// exams marked dirty (a reconcile that failed, or one that found drift, is looked at again on
/// the next pass whatever its age), and exams that ended within `window` whose state changed
/// since a pass found them settled. An ended exam is settled when a pass reconciled it and
/// found nothing to copy either way; later passes read only its fingerprint (its plan key and
/// the sizes of its ack, lock and clock hashes: two round trips) and reconcile it again only
/// when that moved (an ack, a lock, a lost or changed plan key). A node that ended 20 exams of
/// 10,000 idles like a fresh one, within the window too.
public struct FinalSync: Service {
    /// What one reconcile changed.
    public struct Report: Sendable, Hashable {
        public var candidatesUpdatedInDB = 0
        public var keysRewritten = 0
        /// Another node held the exam's sync lock: this node looked at nothing.
        public var lockedElsewhere = false

        public init() {}
    }

    /// The DB's plans and candidates (the truth) and where the receipts are copied.
    package let store: any ExamPlanStore & PeopleStore & ExamDayStore & StateArchiveStore
    package let state: any StateStore
    package let interval: Duration
    /// How long after its end an exam stays in the periodic pass.
    package let window: Duration
    /// How long after its end an exam's sessions stay open (`SessionClosing`): after that its
    /// candidates' keys are neither read nor rewritten, and its state is retired
    /// (`retireClosed`). Nil: never.
    package let closeAfter: Duration?
    /// Exams to look at on the next pass whatever their age, and ended exams found settled.
    private let dirty = DirtyExams()
    /// This node's name, as the owner of the sync locks it takes.
    package let nodeId: String
    package let logger: Logger
    package let faults: FaultPoints
    /// Syncs asked for after ends, in the order they are due (one delay for all).
    private let requests: AsyncStream<(examId: String, due: ContinuousClock.Instant)>
    private let requested: AsyncStream<(examId: String, due: ContinuousClock.Instant)>.Continuation

    package init(
        store: any ExamPlanStore & PeopleStore & ExamDayStore & StateArchiveStore, state: any StateStore, interval: Duration,
        window: Duration = .seconds(600), closeAfter: Duration? = nil, nodeId: String, logger: Logger, faults: FaultPoints = .none
    ) {
        self.store = store
        self.state = state
        self.interval = interval
        self.window = window
        self.closeAfter = closeAfter
        self.nodeId = nodeId
        self.logger = logger
        self.faults = faults
        // Bounded: a node that cannot keep up drops the oldest asks (the periodic pass covers them).
        (requests, requested) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(10_000))
    }

    /// Asks for exam `examId` to be reconciled `delay` from now (after an end: time for the
    /// browsers' acks to arrive).
    package func scheduleSync(examId: String, after delay: Duration) {
        requested.yield((examId, .now + delay))
    }

    /// Reconciles one exam; errors are logged and leave the next pass to try again (the exam
    /// is marked dirty, and so is one whose state store had drifted).
    @discardableResult
    public func reconcile(examId: String) async -> Report {
        do {
            let report = try await reconcileOrThrow(examId: examId)
            dirty.exams.withLock { dirty in
                if report == Report() { dirty.remove(examId) } else { dirty.insert(examId) }
            }
            return report
        } catch is CancellationError {
            return Report()
        } catch {
            dirty.exams.withLock { _ = $0.insert(examId) }
            logger.warning("final sync failed", metadata: ["examId": "\(examId)", "error": "\(error)"])
            return Report()
        }
    }

    /// The exams the next periodic pass looks at whatever their age.
    public var dirtyExams: Set<String> { dirty.exams.withLock { $0 } }

    package func reconcileOrThrow(examId: String) async throws -> Report {
        let report = try await withSyncLock(examId: examId) { try await reconcileLocked(examId: examId) }
        guard let report else {
            var report = Report()
            report.lockedElsewhere = true
            return report
        }
        return report
    }

    /// Runs `body` holding exam `examId`'s sync lock; nil when another node holds it (only one
    /// node syncs or retires a given exam at a time; a node that finds it taken leaves it).
    func withSyncLock<R: Sendable>(examId: String, _ body: () async throws -> R) async throws -> R? {
        let lockKey = "exam_sync_lock:\(examId)"
        guard try await state.lock(lockKey, owner: nodeId, ttl: .seconds(30)) else { return nil }
        do {
            let result = try await body()
            try? await state.unlock(lockKey, owner: nodeId)
            return result
        } catch {
            try? await state.unlock(lockKey, owner: nodeId)
            throw error
        }
    }

    func reconcileLocked(examId: String) async throws -> Report {
        var report = Report()
        guard let plan = try await store.exam(examId), plan.status != .scheduled else { return report }
        var candidates = try await store.candidates(examId: examId)
        // An end whose node died before completing the candidates' rows is finished here.
        if plan.status == .completed, let end = plan.endDatetime, candidates.contains(where: { $0.status != .completed }) {
            let before = candidates.filter { $0.status != .completed }.count
            try await store.completeCandidates(examId: examId, at: end)
            candidates = try await store.candidates(examId: examId)
            report.candidatesUpdatedInDB += before - candidates.filter { $0.status != .completed }.count
        }
        await faults.reach(.syncAfterRowsRead)
        let ids = candidates.map(\.candidateId)
        let raw = try await state.rawCandidates(ids)
        let planCached = try await state.get([PlanStateValue.key(examId)])[0].flatMap(PlanStateValue.init(json:))
        // The state store says "completed" only after the DB committed it, so the DB read
        // *after* the state store is the truth for both: a key ahead of it is wrong, not early.
        guard let fresh = try await store.exam(examId) else { return report }
        // The same holds for one candidate ended alone: its row was read before the state
        // store, so a key that says completed where that row does not is checked against the
        // row read now (the end committed before its key was written), never taken as wrong.
        let claimed = candidates.filter {
            $0.status != .completed && raw[$0.candidateId].flatMap(CandidateStateValue.init(json:))?.status == .completed
        }
        if !claimed.isEmpty {
            let now = Dictionary(
                uniqueKeysWithValues: try await store.candidates(ids: claimed.map(\.candidateId)).map { ($0.candidateId, $0) }
            )
            candidates = candidates.map { now[$0.candidateId] ?? $0 }
        }

        // Redis → DB: later activity and forward status moves (to completed only for an exam
        // the DB has ended).
        var activity: [String: CandidateStateValue] = [:]
        for candidate in candidates {
            guard let cached = raw[candidate.candidateId].flatMap(CandidateStateValue.init(json:)) else { continue }
            if cached.status == .completed && fresh.status != .completed { continue }
            let later = (cached.lastActiveTime ?? .init(secondsSince1970: .min)) > (candidate.lastActiveTime ?? .init(secondsSince1970: .min))
            if later || candidate.status.canMove(to: cached.status) { activity[candidate.candidateId] = cached }
        }
        if !activity.isEmpty {
            report.candidatesUpdatedInDB += try await store.applyCandidateActivity(activity)
            candidates = try await store.candidates(examId: examId)
        }

        // Redis → DB: when each browser acknowledged the end (a column of its own; the
        // candidate's last_active_time stays the end time).
        let unrecorded = Set(candidates.filter { $0.acknowledgedAt == nil }.map(\.candidateId))
        let acks = try await state.acknowledgements(examId: examId).filter { unrecorded.contains($0.key) }
        if !acks.isEmpty {
            report.candidatesUpdatedInDB += try await store.recordAcknowledgements(acks)
        }
        // Redis → DB: when each page reported its lock (the `locked` receipt).
        let unlocked = Set(candidates.filter { $0.lockedAt == nil }.map(\.candidateId))
        let locks = try await state.locks(examId: examId).filter { unlocked.contains($0.key) }
        if !locks.isEmpty {
            report.candidatesUpdatedInDB += try await store.recordLocks(locks)
        }
        // Redis → DB: how far each page's clock was off, reported with its lock.
        let unmeasured = Set(candidates.filter { $0.clockOffsetMs == nil }.map(\.candidateId))
        let offsets = try await state.clockOffsets(examId: examId).filter { unmeasured.contains($0.key) }
        if !offsets.isEmpty {
            report.candidatesUpdatedInDB += try await store.recordClockOffsets(offsets)
        }

        // DB → Redis: rewrite what is missing, malformed, behind the DB, or says an end the DB
        // does not hold.
        var rewrite: [(key: String, value: String)] = []
        let planTruth = PlanStateValue(fresh)
        if planCached != planTruth {
            rewrite.append((PlanStateValue.key(examId), planTruth.json))
        }
        // Once the exam's sessions closed nobody reads its candidates' keys: they are not
        // rewritten (its state is retired, `retireClosed`).
        for candidate in candidates where !sessionsClosed(fresh) {
            let truth = CandidateStateValue(candidate)
            let cached = raw[candidate.candidateId].flatMap(CandidateStateValue.init(json:))
            let wrong: Bool
            if let cached {
                let cachedTime = cached.lastActiveTime ?? .init(secondsSince1970: .min)
                let truthTime = truth.lastActiveTime ?? .init(secondsSince1970: .min)
                let behind = cached.status.rank < truth.status.rank || (cached.status == truth.status && cachedTime < truthTime)
                let unendedEnd = cached.status == .completed && fresh.status != .completed && truth.status != .completed
                wrong = behind || unendedEnd
            } else {
                wrong = true
            }
            if wrong { rewrite.append((CandidateStateValue.key(candidate.candidateId), truth.json)) }
        }
        if !rewrite.isEmpty {
            try await state.set(rewrite)
            report.keysRewritten = rewrite.count
        }
        return report
    }

    /// Reconciles every running exam, every exam marked dirty, and every exam that ended
    /// within the window unless it is settled and its fingerprint has not moved; returns the
    /// exams it reconciled.
    @discardableResult
    public func reconcileAll() async -> [String] {
        do {
            let since = Timestamp.now().adding(seconds: -Int64(window.inSeconds.rounded(.up)))
            let live = try await store.examsToSync(endedSince: since)
            let marked = dirtyExams
            let examIds = live + marked.subtracting(live).sorted()
            // Settled exams that left the window are forgotten.
            dirty.settled.withLock { settled in settled = settled.filter { live.contains($0.key) } }
            var reconciled: [String] = []
            for examId in examIds {
                let fingerprint = try? await state.syncFingerprint(examId: examId)
                let settled = dirty.settled.withLock { $0[examId] }
                if !marked.contains(examId), let fingerprint, fingerprint == settled { continue }
                let report = await reconcile(examId: examId)
                reconciled.append(examId)
                // Nothing to copy either way, and the plan key (now the truth) says ended.
                let settles = report == Report() && !dirtyExams.contains(examId) && fingerprint?.saysEnded == true
                dirty.settled.withLock { $0[examId] = settles ? fingerprint : nil }
            }
            return reconciled
        } catch is CancellationError {
            return []
        } catch {
            logger.warning("final sync pass failed", metadata: ["error": "\(error)"])
        }
        return []
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await serveRequests() }
                // An interval of zero turns the periodic pass off (syncs after ends still run).
                if interval > .zero { group.addTask { await periodicPasses() } }
            }
        }
    }

    private func serveRequests() async {
        for await request in requests {
            try? await Task.sleep(until: request.due)
            if Task.isCancelled { return }
            await reconcile(examId: request.examId)
        }
    }

    private func periodicPasses() async {
        while !Task.isCancelled {
            await reconcileAll()
            await retireClosed()
            try? await Task.sleep(for: interval)
        }
    }
}

/// The exams final sync looks at again on its next pass, and the ended exams it found settled
/// (with their fingerprint then), shared by the copies of `FinalSync`.
final package class DirtyExams: Sendable {
    package let exams = Mutex<Set<String>>([])
    package let settled = Mutex<[String: SyncFingerprint]>([:])
}
