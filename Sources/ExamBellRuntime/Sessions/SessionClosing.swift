import ExamBellCore
import Logging
import Synchronization

/// Browser sessions close with their exam: a session token (or a socket ticket) of an exam
/// that completed more than `closeAfter` ago is refused with 401 `session_closed`, though
/// its signature would still hold for hours.
///
/// The window after the end leaves room for what a page still does then: answers in flight
/// within the grace window, the final save, the ended screen and a reload of it, a proctor's
/// last look at the roster. `exambell serve` keeps sessions an hour after the end
/// (`--session-close-after`).
///
/// Each check costs a table lookup: an exam's end, once seen, is final and kept; an exam
/// not ended is asked again after `recheck`, by one lookup however many browsers ask at once
/// (a whole node's browsers reconnect in the same second). A node with the web role asks the
/// DB, a socket node the state store's plan key. A lookup that fails leaves the session open
/// (the token's signature and expiry still hold): an outage of a backend must not also log
/// every browser out.
public final class SessionClosing: Sendable {
    /// The exam's end when it is completed, nil while it is not.
    public typealias EndLookup = @Sendable (_ examId: String) async throws -> Timestamp?

    public let closeAfter: Duration
    package let recheck: Duration
    private let lookup: EndLookup
    private let now: @Sendable () -> Timestamp
    private let logger: Logger
    private let known = Mutex<[String: Known]>([:])
    /// Exams remembered at most; the ones not ended are forgotten first.
    static package let maxExams = 10_000

    private enum Known {
        case ended(Timestamp)
        case open(checked: ContinuousClock.Instant)
        case looking(Task<Timestamp?, Never>)
    }

    public init(
        closeAfter: Duration, recheck: Duration = .seconds(5), logger: Logger,
        now: @escaping @Sendable () -> Timestamp = { .now() }, lookup: @escaping EndLookup
    ) {
        self.closeAfter = closeAfter
        self.recheck = recheck
        self.logger = logger
        self.now = now
        self.lookup = lookup
    }

    /// A web node's lookup: the DB's plan (the truth).
    public static func ends(in store: any ExamStore) -> EndLookup {
        { examId in try await store.exam(examId).flatMap { $0.status == .completed ? $0.endDatetime : nil } }
    }

    /// A socket node's lookup: the state store's plan key.
    public static func ends(in state: any StateStore) -> EndLookup {
        { examId in try await state.plan(examId).flatMap { $0.status == .completed ? $0.endDatetime : nil } }
    }

    /// Throws 401 `session_closed` when `examId`'s sessions have closed.
    public func check(examId: String) async throws(ExamBellError) {
        guard let end = await end(of: examId) else { return }
        let closes = end.adding(seconds: closeAfter.components.seconds)
        guard now() >= closes else { return }
        throw ExamBellError(
            status: 401, code: "session_closed",
            message: "Exam \(examId) ended at \(end.iso8601); its browser sessions closed at \(closes.iso8601)."
        )
    }

    /// The exam's end, from the table or from one lookup shared by everyone asking now.
    package func end(of examId: String) async -> Timestamp? {
        let instant = ContinuousClock.now
        let task: Task<Timestamp?, Never>? = known.withLock { table in
            switch table[examId] {
            case .ended: return nil
            case .open(let checked) where instant - checked < recheck: return nil
            case .looking(let task): return task
            case .open, nil:
                if table.count >= Self.maxExams {
                    table = table.filter { if case .open = $0.value { false } else { true } }
                    if table.count >= Self.maxExams { table.removeAll() }
                }
                let task = Task { await self.look(examId) }
                table[examId] = .looking(task)
                return task
            }
        }
        if let task { return await task.value }
        return known.withLock { if case .ended(let end) = $0[examId] { end } else { nil } }
    }

    private func look(_ examId: String) async -> Timestamp? {
        let end: Timestamp?
        do {
            end = try await lookup(examId)
        } catch {
            logger.warning("exam state unknown; its sessions stay open", metadata: ["examId": "\(examId)", "error": "\(error)"])
            end = nil
        }
        let checked = ContinuousClock.now
        known.withLock { $0[examId] = end.map(Known.ended) ?? .open(checked: checked) }
        return end
    }
}
