import ExamBellCore
import Synchronization

/// The candidates' connection spans (the exam report's disconnects and time offline): a span
/// opens when a candidate's browser joins this node and closes when it leaves; the presence
/// publisher writes the changes to the state store each tick (`ExamConnections`).
extension SocketHub {
    /// Opens a candidate browser's connection span, for the next presence pass: its serial is
    /// its member id, or `x` past the candidate's budget (then it starts where the first
    /// span past the budget started).
    package func openSpan(_ state: inout State, examId: String, candidateId: String, id: UInt64) -> (start: Int64, serial: String) {
        let now = Timestamp.milliseconds()
        var counted = state.rooms[examId]?.spans[candidateId] ?? (0, nil)
        let span: (start: Int64, serial: String)
        if counted.count < Self.spansPerCandidate {
            counted.count += 1
            span = (now, String(id))
        } else {
            span = (counted.overflowStart ?? now, "x")
            counted.overflowStart = span.start
        }
        state.rooms[examId, default: Room()].spans[candidateId] = counted
        recordSpan(&state, examId: examId, candidateId: candidateId, span: span, end: nil)
        return span
    }

    package func recordSpan(_ state: inout State, examId: String, candidateId: String, span: (start: Int64, serial: String), end: Int64?) {
        let field = ExamConnections.field(
            ConnectionSpan(candidateId: candidateId, instance: instance, start: span.start, end: end), serial: span.serial)
        state.spanChanges[examId, default: []].append(field)
    }

    /// The connection spans opened or closed since the last call, by exam.
    package func takeSpanChanges() -> [String: [(field: String, value: String)]] {
        state.withLock { state in
            defer { state.spanChanges = [:] }
            return state.spanChanges
        }
    }
}
