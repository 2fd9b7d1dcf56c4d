import ExamBellCore
import ExamBellSocket
import Testing

/// Presence as counts plus the members that moved (`RoomPresence`): a tick publishes what
/// changed since the last one, every member only on the first tick and after a failed one.
@Suite("Presence published as changes", .timeLimit(.minutes(1)))
struct PresenceTests {
    @Test("a tick carries the counts and the members that arrived or left since the last one; two tabs are one member")
    func changesOnly() {
        var room = RoomPresence()
        let now = Timestamp.now()
        room.arrived("c1", role: .candidate)
        room.arrived("c1", role: .candidate)  // a second tab
        room.arrived("p1", role: .proctor)
        let first = room.take(at: now, instance: "n~1")
        #expect(first.full && first.present == ["c1": .candidate, "p1": .proctor] && first.absent.isEmpty)
        #expect(first.header == PresenceHeader(candidates: 1, proctors: 1, updated: now, instance: "n~1"))

        room.left("c1")  // one tab of two
        let quiet = room.take(at: now, instance: "n~1")
        #expect(!quiet.full && quiet.present.isEmpty && quiet.absent.isEmpty && quiet.candidates == 1)

        room.left("c1")
        room.arrived("c2", role: .candidate)
        room.left("p1")
        room.arrived("c3", role: .candidate)
        room.left("c3")  // came and went within the tick
        let moved = room.take(at: now, instance: "n~1")
        #expect(moved.present == ["c2": .candidate])
        #expect(Set(moved.absent) == ["c1", "p1", "c3"])
        #expect(moved.candidates == 1 && moved.proctors == 0)

        room.full = true  // as after a failed publish
        let again = room.take(at: now, instance: "n~1")
        #expect(again.full && again.present == ["c2": .candidate])
    }
}
