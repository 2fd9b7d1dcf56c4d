import ExamBellCore
import NIOCore
import Synchronization

/// The socket server's rooms: every connected browser, keyed by exam.
///
/// A broadcast encodes the message once and hands the same bytes to every browser's own
/// outbound buffer without waiting for any of them, so one slow browser never delays the
/// others; a browser whose buffer is full is dropped (it reconnects and is told at once).
/// A room remembers its end, so a browser joining afterwards is told exactly once.
public final class SocketHub: Sendable {
    /// One browser's connection as the hub sees it.
    struct Member {
        var session: Session
        var outbound: AsyncStream<ByteBuffer>.Continuation
        var endSent = false
        var acknowledged = false
    }

    struct Room {
        var members: [UInt64: Member] = [:]
        /// The encoded `exam_end` frame once the exam has ended.
        var end: ByteBuffer?
        /// Whether membership changed since presence was last published.
        var dirty = true
    }

    private struct State {
        var rooms: [String: Room] = [:]
        var nextId: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Outside the lock: read from stream termination handlers, which run under it.
    private let draining = Atomic<Bool>(false)

    public init() {}

    /// Adds a browser; returns its id. A browser of an exam that ended is told at once.
    func join(_ session: Session, outbound: AsyncStream<ByteBuffer>.Continuation) -> UInt64 {
        state.withLock { state in
            state.nextId += 1
            var member = Member(session: session, outbound: outbound)
            if let end = state.rooms[session.examId]?.end {
                member.endSent = true
                if case .dropped = outbound.yield(end) { outbound.finish() }
            }
            state.rooms[session.examId, default: Room()].members[state.nextId] = member
            state.rooms[session.examId]?.dirty = true
            return state.nextId
        }
    }

    /// Removes a browser.
    func leave(_ id: UInt64, examId: String) {
        state.withLock { state in
            guard var room = state.rooms[examId], let member = room.members.removeValue(forKey: id) else { return }
            member.outbound.finish()
            room.dirty = true
            state.rooms[examId] = room
        }
    }

    /// Whether this node knows that the exam ended.
    func hasEnded(_ examId: String) -> Bool {
        state.withLock { $0.rooms[examId]?.end != nil }
    }

    /// Tells every browser of the message's exam that has not been told yet; returns how many
    /// were told now. The frame is encoded once here.
    @discardableResult
    public func broadcast(_ message: ExamEndSocketMessage) -> Int {
        let frame = ByteBuffer(string: message.json)
        return state.withLock { state in
            var room = state.rooms[message.examId] ?? Room()
            if room.end == nil { room.end = frame }
            let frame = room.end!
            var told = 0
            for (id, member) in room.members where !member.endSent {
                room.members[id]!.endSent = true
                if case .dropped = member.outbound.yield(frame) {
                    member.outbound.finish()
                } else {
                    told += 1
                }
            }
            state.rooms[message.examId] = room
            return told
        }
    }

    /// Records a candidate's ack of the end; true the first time for a browser that was told.
    func acknowledge(_ id: UInt64, examId: String) -> Bool {
        state.withLock { state in
            guard let member = state.rooms[examId]?.members[id], member.endSent, !member.acknowledged else { return false }
            state.rooms[examId]?.members[id]?.acknowledged = true
            return true
        }
    }

    /// Who is connected to an exam on this node.
    func presence(_ examId: String, at time: Timestamp) -> Presence {
        state.withLock { state in
            var presence = Presence(candidates: [], proctors: [], updated: time)
            for member in state.rooms[examId]?.members.values ?? [:].values {
                switch member.session.role {
                case .candidate: presence.candidates.insert(member.session.subject)
                case .proctor: presence.proctors.insert(member.session.subject)
                }
            }
            return presence
        }
    }

    /// The exams whose membership changed since the last call (all of them when `all`);
    /// rooms left empty and never ended are forgotten.
    func takeChangedExams(all: Bool) -> [String] {
        state.withLock { state in
            var changed: [String] = []
            for (examId, room) in state.rooms where room.dirty || all {
                changed.append(examId)
                state.rooms[examId]?.dirty = false
            }
            state.rooms = state.rooms.filter { !$0.value.members.isEmpty || $0.value.end != nil || $0.value.dirty }
            return changed
        }
    }

    /// The exams with browsers on this node that have not been told of an end.
    func examsNotEnded() -> [String] {
        state.withLock { state in state.rooms.filter { $0.value.end == nil && !$0.value.members.isEmpty }.map(\.key) }
    }

    /// The exams with at least one proctor on this node.
    func examsWithProctors() -> [String] {
        state.withLock { state in
            state.rooms.filter { $0.value.members.values.contains { $0.session.role == .proctor } }.map(\.key)
        }
    }

    /// Hands one encoded frame to every proctor of the exam on this node; returns how many.
    @discardableResult
    func sendToProctors(_ examId: String, frame: ByteBuffer) -> Int {
        state.withLock { state in
            var sent = 0
            for member in state.rooms[examId]?.members.values ?? [:].values where member.session.role == .proctor {
                if case .dropped = member.outbound.yield(frame) { member.outbound.finish() } else { sent += 1 }
            }
            return sent
        }
    }

    /// Whether the node is shutting down: it takes no new browsers and closes the ones it has.
    var isDraining: Bool { draining.load(ordering: .acquiring) }

    /// Starts the node's shutdown: ends every browser's outbound stream, after which its
    /// connection closes with `SocketServer.restartCloseCode`; returns how many browsers.
    @discardableResult
    func drain() -> Int {
        draining.store(true, ordering: .releasing)
        return state.withLock { state in
            var count = 0
            for room in state.rooms.values {
                for member in room.members.values {
                    member.outbound.finish()
                    count += 1
                }
            }
            return count
        }
    }

    /// Browsers on this node by role.
    func countsByRole() -> (candidates: Int, proctors: Int) {
        state.withLock { state in
            var candidates = 0
            var proctors = 0
            for room in state.rooms.values {
                for member in room.members.values {
                    if member.session.role == .candidate { candidates += 1 } else { proctors += 1 }
                }
            }
            return (candidates, proctors)
        }
    }

    /// How many browsers this node holds.
    public var connectionCount: Int {
        state.withLock { $0.rooms.values.reduce(0) { $0 + $1.members.count } }
    }
}
