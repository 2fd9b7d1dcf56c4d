import ExamBellCore
import ExamBellRuntime
import NIOCore
import NIOWebSocket
import Synchronization

/// The exam day's sends of the socket server's rooms: a candidate's own end, a moved planned
/// end, announcements, and the receipts browsers send back. Like a broadcast, each encodes its
/// frame once and writes it on each browser's event loop without waiting for anyone.
extension SocketHub {
    /// Tells the browsers of candidates who ended alone (`exam_end` with their time); the
    /// room remembers them for their later joins. Returns how many browsers were told.
    @discardableResult
    package func endCandidates(_ event: CandidateEndEvent) -> Int {
        let ids = Set(event.candidateIds)
        return send(ExamEndSocketMessage(examId: event.examId, timestamp: event.timestamp).json, examId: event.examId) { room in
            for id in ids { room.candidateEnds[id] = event.timestamp }
        } pick: { member in
            guard member.isCandidate, !member.endSent, ids.contains(member.session.subject) else { return false }
            member.endSent = true
            member.endTime = event.timestamp
            return true
        }
    }

    /// Sends `exam_time` to the browsers of the candidates concerned (each with its own new
    /// end) and to the exam's proctors (the exam's planned end). Returns how many browsers.
    @discardableResult
    package func changeTime(_ event: ExamTimeEvent) -> Int {
        let times = Set(event.candidates.values).union(event.everyone ? [event.scheduledEndDatetime] : [])
        var texts: [Timestamp: String] = [:]
        for time in times { texts[time] = ExamTimeSocketMessage(examId: event.examId, scheduledEndDatetime: time).json }
        let proctors = ExamTimeSocketMessage(examId: event.examId, scheduledEndDatetime: event.scheduledEndDatetime).json
        // One pass over the room, whatever the number of distinct new ends.
        return send(examId: event.examId) { member in
            guard member.isCandidate else { return proctors }
            guard !member.endSent, let time = event.end(for: member.session.subject), let text = texts[time] else { return nil }
            member.timeSent = time
            return text
        }
    }

    /// Sends an announcement to the candidates it concerns and to the exam's proctors.
    @discardableResult
    package func announce(_ event: AnnouncementEvent) -> Int {
        send(
            AnnouncementSocketMessage(event).json, examId: event.examId,
            pick: { member in !member.isCandidate || event.concerns(member.session.subject) }
        )
    }

    /// Records that a candidate's page locked; its end time the first time, else nil.
    package func markLocked(_ id: UInt64, examId: String) -> Timestamp? {
        state.withLock { state in
            guard let member = state.rooms[examId]?.members[id], member.endSent, !member.locked else { return nil }
            state.rooms[examId]?.members[id]?.locked = true
            return member.endTime
        }
    }

    /// The planned end last sent to this browser, which it now acknowledges.
    package func timeSent(_ id: UInt64, examId: String) -> Timestamp? {
        state.withLock { $0.rooms[examId]?.members[id]?.timeSent }
    }

    /// Sends `text` to the members `pick` chooses (it may update them), after `update` ran on
    /// the room (a room is made for an exam without browsers only to remember candidate ends).
    @discardableResult
    package func send(
        _ text: String, examId: String, room update: (inout Room) -> Void = { _ in }, pick: (inout Member) -> Bool
    ) -> Int {
        send(examId: examId, room: update) { member in pick(&member) ? text : nil }
    }

    /// Sends each member the text `frame` gives it (nil: nothing), in one pass over the room:
    /// each distinct text is encoded once and written on each browser's event loop.
    @discardableResult
    package func send(examId: String, room update: (inout Room) -> Void = { _ in }, frame: (inout Member) -> String?) -> Int {
        let (byText, count) = state.withLock { state -> ([String: ByLoop], Int) in
            var byText: [String: ByLoop] = [:]
            var count = 0
            guard state.rooms[examId] != nil else {
                var room = Room()
                update(&room)
                if !room.candidateEnds.isEmpty { state.rooms[examId] = room }
                return (byText, 0)
            }
            update(&state.rooms[examId]!)
            for index in state.rooms[examId]!.members.indices {
                guard let text = frame(&state.rooms[examId]!.members.values[index]) else { continue }
                Self.group(state.rooms[examId]!.members.values[index].browser, into: &byText[text, default: [:]])
                count += 1
            }
            return (byText, count)
        }
        for (text, byLoop) in byText {
            let bytes = Self.textFrame(text)
            for (loop, browsers) in byLoop.values { Self.write(bytes, to: browsers, on: loop) }
        }
        return count
    }
}
