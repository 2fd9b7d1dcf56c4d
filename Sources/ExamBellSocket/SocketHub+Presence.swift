import ExamBellCore
import Synchronization

/// One room's presence on this node: each subject here with how many of its browsers (a
/// reload, a second tab), and the subjects that arrived or left since presence was last
/// published. A tick publishes those changes and the counts (`PresenceUpdate`), not every
/// member: while 19,000 browsers join or leave, a tick writes what moved in it.
package struct RoomPresence {
    package init() {}

    package var here: [String: (role: SessionRole, browsers: Int)] = [:]
    /// Subject → whether it is here now, for those that changed since the last publish.
    package var changed: [String: Bool] = [:]
    /// Whether the next publish writes every member (the first; after one that failed; now and then).
    package var full = true
    package var candidates = 0
    package var proctors = 0

    package mutating func arrived(_ subject: String, role: SessionRole) {
        if let entry = here[subject] {
            here[subject] = (entry.role, entry.browsers + 1)
            return
        }
        here[subject] = (role, 1)
        changed[subject] = true
        count(role, 1)
    }

    package mutating func left(_ subject: String) {
        guard let entry = here[subject] else { return }
        if entry.browsers > 1 {
            here[subject] = (entry.role, entry.browsers - 1)
            return
        }
        here[subject] = nil
        changed[subject] = false
        count(entry.role, -1)
    }

    private mutating func count(_ role: SessionRole, _ delta: Int) {
        switch role {
        case .candidate: candidates += delta
        case .proctor: proctors += delta
        }
    }

    /// What to publish now, and the changes taken.
    package mutating func take(at time: Timestamp, instance: String) -> PresenceUpdate {
        var update = PresenceUpdate(
            header: PresenceHeader(candidates: candidates, proctors: proctors, updated: time, instance: instance), full: full)
        if full {
            update.present = here.mapValues(\.role)
        } else {
            for (subject, isHere) in changed {
                if isHere, let role = here[subject]?.role { update.present[subject] = role } else if !isHere { update.absent.append(subject) }
            }
        }
        changed = [:]
        full = false
        return update
    }
}

extension SocketHub {
    /// The presence to publish of each exam whose membership changed since the last call (all
    /// of them when `all`; every member of each when `full`); rooms left empty are forgotten
    /// when never ended and holding no candidate's span count (a running exam keeps its counts,
    /// or a candidate reconnecting alone in a loop would reset its span budget each time its
    /// room emptied), or ended before their sessions closed.
    package func takePresence(all: Bool, full: Bool = false) -> [(examId: String, update: PresenceUpdate)] {
        let closedBefore = forgetEndedAfter.map { Timestamp.now().adding(seconds: -$0.components.seconds) }
        let now = Timestamp.now()
        return state.withLock { state in
            var updates: [(examId: String, update: PresenceUpdate)] = []
            for examId in state.rooms.keys where all || state.rooms[examId]?.dirty == true {
                if full { state.rooms[examId]?.presence.full = true }
                guard let update = state.rooms[examId]?.presence.take(at: now, instance: instance) else { continue }
                updates.append((examId, update))
                state.rooms[examId]?.dirty = false
            }
            state.rooms = state.rooms.filter { _, room in
                guard room.members.isEmpty, !room.dirty else { return true }
                guard let endTime = room.endTime else { return !room.spans.isEmpty }
                return closedBefore.map { endTime > $0 } ?? true
            }
            return updates
        }
    }

    /// A publish of the exam's presence failed: the next one writes every member.
    package func presenceNotPublished(_ examId: String) {
        state.withLock { state in
            state.rooms[examId]?.presence.full = true
            state.rooms[examId]?.dirty = true
        }
    }
}
