import ExamBellCore
import Testing

/// The four fixed shapes of DESIGN.md, byte for byte.
@Suite("Wire messages", .timeLimit(.minutes(10)))
struct WireMessageTests {
    let end = Timestamp(iso8601: "2024-01-16T18:00:00Z")!

    @Test("queue entry payload")
    func queueMessage() throws {
        let message = ExamEndQueueMessage(examId: "e123", timestamp: end)
        #expect(message.json == #"{"type":"exam_end","examId":"e123","status":"completed","timestamp":"2024-01-16T18:00:00Z"}"#)
        #expect(try ExamEndQueueMessage(json: message.json) == message)
        #expect(throws: (any Error).self) {
            try ExamEndQueueMessage(json: #"{"type":"other","examId":"e1","status":"completed","timestamp":"2024-01-16T18:00:00Z"}"#)
        }
        #expect(throws: (any Error).self) { try ExamEndQueueMessage(json: "not json") }
    }

    @Test("socket message, with the Korean notice")
    func socketMessage() {
        let message = ExamEndSocketMessage(ExamEndQueueMessage(examId: "e123", timestamp: end))
        #expect(message.json == #"{"type":"exam_end","examId":"e123","message":"시험이 종료되었습니다.","timestamp":"2024-01-16T18:00:00Z"}"#)
    }

    @Test("state store values")
    func stateValues() {
        #expect(PlanStateValue.key("e123") == "exam_plan:e123")
        #expect(CandidateStateValue.key("c1") == "exam_candidate:c1:status")
        #expect(PlanStateValue(status: .completed, endDatetime: end).json == #"{"status":"completed","end_datetime":"2024-01-16T18:00:00Z"}"#)
        #expect(
            CandidateStateValue(status: .completed, lastActiveTime: end).json
                == #"{"status":"completed","last_active_time":"2024-01-16T18:00:00Z"}"#
        )
        #expect(PlanStateValue(status: .inProgress, endDatetime: nil).json == #"{"status":"in_progress","end_datetime":null}"#)
        #expect(PlanStateValue(json: #"{"status":"completed","end_datetime":"2024-01-16T18:00:00Z"}"#)?.endDatetime == end)
        #expect(PlanStateValue(json: #"{"status":"corrupt"}"#) == nil)
    }

    @Test("exam-day socket messages of DESIGN, byte for byte, and what browsers send back")
    func examDayMessages() {
        let time = ExamTimeSocketMessage(examId: "e123", scheduledEndDatetime: end)
        #expect(time.json == #"{"type":"exam_time","examId":"e123","scheduledEndDatetime":"2024-01-16T18:00:00Z"}"#)
        let notice = AnnouncementSocketMessage(
            AnnouncementEvent(examId: "e123", announcementId: "a1", message: "10분 \"남음\"", timestamp: end, candidateIds: ["c1"])
        )
        #expect(
            notice.json
                == #"{"type":"announcement","examId":"e123","announcementId":"a1","message":"10분 \"남음\"","timestamp":"2024-01-16T18:00:00Z"}"#
        )
        #expect(BrowserMessage(json: #"{"type":"ack","examId":"e123"}"#, examId: "e123") == .endAcknowledged)
        #expect(BrowserMessage(json: #"{"type":"locked","examId":"e123"}"#, examId: "e123") == .locked(clockOffsetMs: nil))
        // The SDK's lock says how far the device's clock is off; nonsense is no measurement.
        #expect(
            BrowserMessage(json: #"{"type":"locked","examId":"e123","clockOffsetMs":-300012.4,"rttMs":12}"#, examId: "e123")
                == .locked(clockOffsetMs: -300012))
        #expect(
            BrowserMessage(json: #"{"type":"locked","examId":"e123","clockOffsetMs":1e300}"#, examId: "e123") == .locked(clockOffsetMs: nil))
        #expect(BrowserMessage(json: #"{"type":"ack","examId":"e123","of":"exam_time"}"#, examId: "e123") == .timeAcknowledged)
        #expect(
            BrowserMessage(json: #"{"type":"ack","examId":"e123","of":"announcement","announcementId":"a1"}"#, examId: "e123")
                == .announcementAcknowledged(announcementId: "a1")
        )
        #expect(BrowserMessage(json: #"{"type":"ack","examId":"other"}"#, examId: "e123") == nil, "another exam's")
        #expect(BrowserMessage(json: #"{"type":"ack","examId":"e123","of":"announcement"}"#, examId: "e123") == nil)
        #expect(BrowserMessage(json: #"{"type":"ack","examId":"e123","of":"nonsense"}"#, examId: "e123") == nil)
        #expect(BrowserMessage(json: "not json", examId: "e123") == nil)
        #expect(BrowserMessage(json: #"{"type":"hello","examId":"e123"}"#, examId: "e123") == nil)
        #expect(BrowserMessage(json: #"{"type":"ack","examId":"bad id!"}"#, examId: "e123") == nil)
    }

    @Test("queue:exam_events entries read back as they were written")
    func examEvents() throws {
        let events: [ExamEvent] = [
            .time(ExamTimeEvent(examId: "e1", scheduledEndDatetime: end, everyone: true, candidates: ["c7": end.adding(seconds: 600)])),
            .time(ExamTimeEvent(examId: "e1", scheduledEndDatetime: end, everyone: false, candidates: [:])),
            .candidateEnd(CandidateEndEvent(examId: "e1", candidateIds: ["c1", "c2"], timestamp: end)),
            .announcement(AnnouncementEvent(examId: "e1", announcementId: "a3", message: "hi", timestamp: end, candidateIds: nil)),
            .announcement(AnnouncementEvent(examId: "e1", announcementId: "a4", message: "줄\n바꿈", timestamp: end, candidateIds: ["c1"])),
        ]
        for event in events {
            #expect(try ExamEvent(json: event.json) == event)
        }
        #expect(
            events[2].json == #"{"type":"candidate_end","examId":"e1","candidateIds":["c1","c2"],"timestamp":"2024-01-16T18:00:00Z"}"#
        )
        #expect(throws: (any Error).self) { try ExamEvent(json: ExamEndQueueMessage(examId: "e1", timestamp: end).json) }
        #expect(throws: (any Error).self) { try ExamEvent(json: #"{"type":"exam_time","examId":"e1"}"#) }
        let change = ExamTimeEvent(examId: "e1", scheduledEndDatetime: end, everyone: false, candidates: ["c7": end.adding(seconds: 60)])
        #expect(change.end(for: "c7") == end.adding(seconds: 60))
        #expect(change.end(for: "c8") == nil, "a change for listed candidates leaves the others alone")
    }
}

@Suite("Domain", .timeLimit(.minutes(10)))
struct DomainTests {
    @Test("exam plan transitions: scheduled → in_progress → completed, completed is final")
    func examTransitions() {
        #expect(ExamStatus.scheduled.canMove(to: .inProgress))
        #expect(ExamStatus.inProgress.canMove(to: .completed))
        #expect(!ExamStatus.scheduled.canMove(to: .completed))
        for next in ExamStatus.allCases {
            #expect(!ExamStatus.completed.canMove(to: next))
        }
        #expect(!ExamStatus.inProgress.canMove(to: .scheduled))
    }

    @Test("candidate transitions only move forward")
    func candidateTransitions() {
        #expect(CandidateStatus.registered.canMove(to: .inProgress))
        #expect(CandidateStatus.inProgress.canMove(to: .completed))
        #expect(CandidateStatus.registered.canMove(to: .completed))
        #expect(!CandidateStatus.completed.canMove(to: .inProgress))
        #expect(!CandidateStatus.inProgress.canMove(to: .registered))
        #expect(CandidateStatus.following(.completed) == .completed)
    }

    @Test(
        "ids follow ^[A-Za-z0-9_-]{1,64}$",
        arguments: [
            ("e123", true), ("A_b-9", true), (String(repeating: "x", count: 64), true),
            ("", false), (String(repeating: "x", count: 65), false), ("a b", false), ("é", false), ("a/b", false), ("a:b", false),
        ])
    func identifiers(_ id: String, _ valid: Bool) {
        #expect(Identifier.isValid(id) == valid)
    }

    @Test("timestamps are UTC ISO 8601 with whole seconds and Z")
    func timestamps() {
        #expect(Timestamp(secondsSince1970: 0).iso8601 == "1970-01-01T00:00:00Z")
        #expect(Timestamp(iso8601: "2024-01-16T18:00:00Z")?.secondsSince1970 == 1_705_428_000)
        #expect(Timestamp(iso8601: "2024-02-29T23:59:59Z")?.iso8601 == "2024-02-29T23:59:59Z")
        #expect(Timestamp(iso8601: "2023-02-29T00:00:00Z") == nil)
        #expect(Timestamp(iso8601: "2024-01-16T18:00:00+09:00") == nil)
        #expect(Timestamp(iso8601: "2024-01-16 18:00:00Z") == nil)
        let now = Timestamp.now()
        #expect(Timestamp(iso8601: now.iso8601) == now)
    }

}
