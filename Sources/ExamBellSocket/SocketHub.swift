import ExamBellCore
import ExamBellRuntime
import NIOCore
import NIOWebSocket
import Synchronization

/// The socket server's rooms: every connected browser, keyed by exam.
///
/// A broadcast encodes its frame once (header and payload; the room keeps the bytes), then,
/// under the lock, only collects the browsers to tell, grouped by event loop; outside it,
/// each event loop gets one job that writes the same bytes to each of its browsers through
/// its `BrowserHandler`. No task wakes up per browser and no browser is waited for: one whose
/// channel is not writable (its client stopped reading and NIO's buffer passed its high-water
/// mark) is cut instead, and it reconnects and is told at once. A room remembers its end, so
/// a browser joining afterwards is told exactly once.
public final class SocketHub: Sendable {
    /// One browser's connection as the hub sees it.
    package struct Member {
        package var session: Session
        package var browser: BrowserLink
        package var endSent = false
        package var acknowledged = false
        /// The end time this browser was told (the exam's, or its candidate's own).
        package var endTime: Timestamp?
        /// Whether its page reported the lock.
        package var locked = false
        /// The planned end it was last sent in `exam_time`.
        package var timeSent: Timestamp?
        /// Its connection span (candidates): when it joined (ms) and its field's serial.
        package var span: (start: Int64, serial: String)?
        package var isCandidate: Bool { session.role == .candidate }
    }

    package struct Room {
        package var members: [UInt64: Member] = [:]
        /// The `exam_end` frame's wire bytes once the exam has ended, and its time.
        package var end: ByteBuffer?
        package var endTime: Timestamp?
        /// Candidates who ended alone, with their time: a browser of theirs joining later is
        /// told with that time.
        package var candidateEnds: [String: Timestamp] = [:]
        /// Whether membership changed since presence was last published.
        package var dirty = true
        /// Presence on this node (`SocketHub+Presence.swift`): the subjects here with their
        /// browsers, and what changed since the last publish.
        package var presence = RoomPresence()
        /// Spans recorded per candidate on this node, and where spans past the budget began
        /// (`openSpan`).
        package var spans: [String: (count: Int, overflowStart: Int64?)] = [:]
    }

    package struct State {
        package var rooms: [String: Room] = [:]
        package var nextId: UInt64 = 0
        package var count = 0
        /// Seats held (see `Seat`) in all, per session and per client address (when the node
        /// counts addresses; else empty).
        package var perSession: [Session: Int] = [:]
        package var perAddress: [String: Int] = [:]
        /// Connection spans opened or closed since they were last taken, by exam.
        package var spanChanges: [String: [(field: String, value: String)]] = [:]
    }

    /// Every room, under one lock (`SocketHub+ExamDay.swift` reaches it too).
    package let state = Mutex(State())
    private let draining = Atomic<Bool>(false)

    /// How long after its end a room with no browser is remembered: after that the exam's
    /// sessions have closed (`SessionClosing`) and no browser of it joins again. Without
    /// it, a node that has run many exams would keep (and scan every second) each one's room.
    package let forgetEndedAfter: Duration?

    /// The crash tests' points (`.none` in the product).
    package let faults: FaultPoints

    /// This process among the socket nodes (`ConnectionSpan.instance`): node id and start time.
    public let instance: String

    /// Connection spans one candidate records on this node separately; later ones are merged
    /// into one span (first start to last end), so a reconnect loop costs bounded storage.
    static package let spansPerCandidate = 500

    public init(forgetEndedAfter: Duration? = nil, faults: FaultPoints = .none, instance: String = "node") {
        self.forgetEndedAfter = forgetEndedAfter
        self.faults = faults
        self.instance = instance
    }

    /// What one browser may hold on this node: the budgets `reserve` checks.
    package struct SeatLimits: Sendable {
        /// Browsers on this node in all.
        package var node: Int
        /// Sockets of one session token (a reload, a second tab).
        package var perSession: Int
        /// Sockets of one client address, when the node counts addresses.
        package var perAddress: Int?
    }

    /// Which budget a handshake would overdraw.
    package enum SeatRefusal: Error, Equatable {
        case session, address, node
    }

    /// A place on this node, held from a handshake's admission until its browser leaves (or the
    /// handshake fails: a seat no one holds any more frees itself). Reserving before the
    /// upgrade, under the hub's lock, is what keeps the per-session and per-address budgets
    /// whole when one token's handshakes arrive all at once.
    final package class Seat: Sendable {
        package let session: Session
        /// The client address it is counted by, when the node counts addresses.
        package let address: String?
        private let hub: SocketHub
        private let held = Atomic<Bool>(true)

        fileprivate init(session: Session, address: String?, hub: SocketHub) {
            self.session = session
            self.address = address
            self.hub = hub
        }

        /// Gives the place back (once).
        package func release() {
            guard held.exchange(false, ordering: .acquiringAndReleasing) else { return }
            hub.free(session: session, address: address)
        }

        deinit { release() }
    }

    /// Takes a place for a browser of `session` (from `address`) if every budget has room, in
    /// one step: concurrent handshakes cannot overdraw a budget.
    package func reserve(_ session: Session, address: String?, limits: SeatLimits) -> Result<Seat, SeatRefusal> {
        let refusal: SeatRefusal? = state.withLock { state in
            if state.perSession[session, default: 0] >= limits.perSession { return .session }
            if let limit = limits.perAddress, let address, state.perAddress[address, default: 0] >= limit { return .address }
            if state.count >= limits.node { return .node }
            state.count += 1
            state.perSession[session, default: 0] += 1
            if let address { state.perAddress[address, default: 0] += 1 }
            return nil
        }
        if let refusal { return .failure(refusal) }
        return .success(Seat(session: session, address: address, hub: self))
    }

    private func free(session: Session, address: String?) {
        state.withLock { state in
            state.count -= 1
            state.perSession.countDown(session)
            if let address { state.perAddress.countDown(address) }
        }
    }

    /// Adds the browser that holds `seat`; returns its id. A browser of an exam that ended is
    /// told at once.
    package func join(_ seat: Seat, browser: BrowserLink) -> UInt64 {
        let session = seat.session
        let (id, end) = state.withLock { state in
            state.nextId += 1
            var member = Member(session: session, browser: browser)
            var end: ByteBuffer?
            do {
                // Scoped: a copy of the room still alive below would make the insert copy
                // every member of the room (O(browsers) per join, O(browsers²) to connect a
                // room: 125 s for 19,000 browsers, against 21 s for Nchan).
                let room = state.rooms[session.examId]
                end = room?.end
                member.endTime = room?.endTime
                if session.role == .candidate, let own = room?.candidateEnds[session.subject],
                    own < (room?.endTime ?? own.adding(seconds: 1))
                {
                    end = Self.endFrame(examId: session.examId, at: own)
                    member.endTime = own
                }
            }
            member.endSent = end != nil
            if session.role == .candidate {
                member.span = openSpan(&state, examId: session.examId, candidateId: session.subject, id: state.nextId)
            }
            state.rooms[session.examId, default: Room()].members[state.nextId] = member
            state.rooms[session.examId]?.dirty = true
            state.rooms[session.examId]?.presence.arrived(session.subject, role: session.role)
            return (state.nextId, end)
        }
        if let end { Self.write(end, to: [browser], on: browser.channel.eventLoop) }
        return id
    }

    /// Removes a browser and gives its seat back.
    package func leave(_ id: UInt64, seat: Seat) {
        state.withLock { state in
            // In place: copying the room out would copy its members (O(browsers) per leave).
            guard let member = state.rooms[seat.session.examId]?.members.removeValue(forKey: id) else { return }
            state.rooms[seat.session.examId]?.dirty = true
            state.rooms[seat.session.examId]?.presence.left(member.session.subject)
            if let span = member.span {
                recordSpan(&state, examId: seat.session.examId, candidateId: member.session.subject, span: span, end: Timestamp.milliseconds())
            }
        }
        seat.release()
    }

    /// Whether this node knows that the exam ended.
    package func hasEnded(_ examId: String) -> Bool {
        state.withLock { $0.rooms[examId]?.end != nil }
    }

    /// Tells every browser of the message's exam that has not been told yet; returns how many
    /// were handed the frame now. The frame is encoded once here. `written`, when given, is
    /// called once every event loop has written the frame to each of its browsers (at once
    /// when there were none).
    @discardableResult
    public func broadcast(_ message: ExamEndSocketMessage, written: (@Sendable () -> Void)? = nil) -> Int {
        let fresh = Self.textFrame(message.json)
        let (frame, byLoop, told) = state.withLock { state in
            Self.collect(&state.rooms[message.examId, default: Room()], fresh: fresh, time: message.timestamp)
        }
        let loops = written.map { Countdown(byLoop.count, then: $0) }
        for (loop, browsers) in byLoop.values { Self.write(frame, to: browsers, on: loop, faults: faults, done: loops) }
        return told
    }

    /// Browsers grouped by their event loop.
    package typealias ByLoop = [ObjectIdentifier: (any EventLoop, [BrowserLink])]

    /// Adds a browser to its event loop's group.
    static package func group(_ browser: BrowserLink, into byLoop: inout ByLoop) {
        let loop = browser.channel.eventLoop
        byLoop[ObjectIdentifier(loop), default: (loop, [])].1.append(browser)
    }

    /// Marks the room ended and its untold members told (in place: no copy of the members);
    /// returns the frame and their channels by event loop.
    private static func collect(_ room: inout Room, fresh: ByteBuffer, time: Timestamp) -> (ByteBuffer, ByLoop, Int) {
        let frame = room.end ?? fresh
        room.end = frame
        room.endTime = room.endTime ?? time
        let endTime = room.endTime
        var byLoop: ByLoop = [:]
        var told = 0
        for index in room.members.indices where !room.members.values[index].endSent {
            room.members.values[index].endSent = true
            room.members.values[index].endTime = endTime
            group(room.members.values[index].browser, into: &byLoop)
            told += 1
        }
        return (frame, byLoop, told)
    }

    /// Browsers one job on an event loop writes to before it lets the loop's other work run.
    public static let writeChunk = 256

    /// Jobs on `loop` write a frame's wire bytes to each browser (a browser that cannot take
    /// them is cut): the per-browser work is only the write itself. Each job writes one chunk
    /// and queues the next, so what else the loop has to do (the end request's own answer, a
    /// handshake) waits for one chunk, not for the whole room.
    static package func write(
        _ bytes: ByteBuffer, to browsers: [BrowserLink], on loop: any EventLoop, from start: Int = 0, faults: FaultPoints = .none,
        done: Countdown? = nil
    ) {
        loop.execute {
            let end = min(start + writeChunk, browsers.count)
            for index in start..<end { browsers[index].handler.value.write(encoded: bytes) }
            if end < browsers.count {
                if start == 0 { faults.reachNow(.socketMidBroadcast) }
                write(bytes, to: browsers, on: loop, from: end, faults: faults, done: done)
            } else {
                done?.countDown()
            }
        }
    }

    /// Records a candidate's ack of the end; true the first time for a browser that was told.
    package func acknowledge(_ id: UInt64, examId: String) -> Bool {
        state.withLock { state in
            guard let member = state.rooms[examId]?.members[id], member.endSent, !member.acknowledged else { return false }
            state.rooms[examId]?.members[id]?.acknowledged = true
            return true
        }
    }

    /// The rooms this node holds: exams with browsers here, and ended ones it still remembers.
    public var roomCount: Int { state.withLock { $0.rooms.count } }

    /// The exams with browsers on this node that have not been told of an end.
    package func examsNotEnded() -> [String] {
        state.withLock { state in state.rooms.filter { $0.value.end == nil && !$0.value.members.isEmpty }.map(\.key) }
    }

    /// The exams with at least one proctor on this node.
    package func examsWithProctors() -> [String] {
        state.withLock { state in
            state.rooms.filter { $0.value.members.values.contains { $0.session.role == .proctor } }.map(\.key)
        }
    }

    /// Writes one text frame to every proctor of the exam on this node; returns how many.
    @discardableResult
    package func sendToProctors(_ examId: String, text: ByteBuffer) -> Int {
        let bytes = Self.encode(WebSocketFrame(fin: true, opcode: .text, data: text))
        let browsers = state.withLock { state in
            (state.rooms[examId]?.members.values ?? [:].values).filter { $0.session.role == .proctor }.map(\.browser)
        }
        for browser in browsers { Self.write(bytes, to: [browser], on: browser.channel.eventLoop) }
        return browsers.count
    }

    /// Whether the node is shutting down: it takes no new browsers and closes the ones it has.
    package var isDraining: Bool { draining.load(ordering: .acquiring) }

    /// Starts the node's shutdown: sends every browser a close frame with `closeCode` and
    /// closes its connection when it answers or `BrowserHandler.closeGrace` later, whatever
    /// the browser does (a browser that stopped reading is never waited for); returns how many
    /// browsers. Each close runs on the browser's event loop, one job per loop.
    @discardableResult
    package func drain(closeCode: WebSocketErrorCode, reason: String) -> Int {
        draining.store(true, ordering: .releasing)
        let browsers = state.withLock { state in state.rooms.values.flatMap { $0.members.values.map(\.browser) } }
        var byLoop: ByLoop = [:]
        for browser in browsers { Self.group(browser, into: &byLoop) }
        for (loop, browsers) in byLoop.values {
            loop.execute {
                for browser in browsers { browser.handler.value.close(code: closeCode, reason: reason) }
            }
        }
        return browsers.count
    }

    /// Browsers on this node by role.
    package func countsByRole() -> (candidates: Int, proctors: Int) {
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

    /// How many browsers this node holds (joined, or admitted and upgrading).
    public var connectionCount: Int { state.withLock { $0.count } }

}
