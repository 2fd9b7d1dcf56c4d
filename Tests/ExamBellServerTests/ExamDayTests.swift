import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellRuntime
import ExamBellServer
import ExamBellSocket
import ExamBellTestSupport
import ExamBellWeb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The exam day over a live node and real WebSocket clients (DESIGN "Exam day"): time
/// changes, single candidates' ends, hand-in, announcements, receipts, late submissions.
@Suite("Exam day", .timeLimit(.minutes(10)))
struct ExamDayTests {
    /// A candidate page's answers to the server's frames: ack and lock after `exam_end`, ack of
    /// `exam_time`, ack of each announcement (as if dismissed).
    static let page: @Sendable (String) -> [String] = { text in
        guard let frame = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
            let type = frame["type"] as? String, let examId = frame["examId"] as? String
        else { return [] }
        switch type {
        case "exam_end": return [#"{"type":"locked","examId":"\#(examId)"}"#]
        case "exam_time": return [#"{"type":"ack","examId":"\#(examId)","of":"exam_time"}"#]
        case "announcement":
            let id = frame["announcementId"] as? String ?? ""
            return [#"{"type":"ack","examId":"\#(examId)","of":"announcement","announcementId":"\#(id)"}"#]
        default: return []
        }
    }

    /// Creates a running exam planned to end `in` seconds from now, with candidates c1…cN and a proctor.
    static func exam(_ client: some TestClientProtocol, _ examId: String, candidates: Int, endsIn seconds: Int64 = 3600)
        async throws -> (ids: [String], end: Timestamp)
    {
        let end = Timestamp.now().adding(seconds: seconds)
        let created = try await client.call(
            .post, "/api/exams", json: #"{"examId":"\#(examId)","title":"Day","scheduledEndDatetime":"\#(end.iso8601)"}"#
        )
        #expect(created.status == .created)
        let ids = try await client.makeExamPeople(examId, candidates: candidates)
        #expect(try await client.call(.post, "/api/exams/\(examId)/start").status == .ok)
        return (ids, end)
    }

    static func json(_ response: TestResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]) ?? [:]
    }

    static func errorCode(_ response: TestResponse) -> String? {
        try? decode(ErrorBody.self, response).error.code
    }

    @Test("moving the end: listed candidates alone, then everyone; browsers told at once and acks on the roster; bad changes refused")
    func timeChanges() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let (ids, planned) = try await Self.exam(client, "t1", candidates: 3)
            let tokens = try await client.tokens("t1", role: "candidate", ids: ids)
            let proctor = try await client.tokens("t1", role: "proctor", ids: ["t1-p1"])[0]
            let browsers = tokens.map { TestBrowser(port: port, token: $0, reply: Self.page) }
            let proctorBrowser = TestBrowser(port: port, token: proctor)
            await eventually("4 browsers connected") { test.node.hub.connectionCount == 4 }

            // An accommodation: c3 gets 10 more minutes.
            let listed = try await client.call(
                .post, "/api/exams/t1/time", json: #"{"addMinutes":10,"candidateIds":["t1-c3"],"reason":"accommodation"}"#
            )
            #expect(listed.status == .ok)
            let c3End = planned.adding(seconds: 600).iso8601
            #expect(
                String(buffer: listed.body)
                    == #"{"candidates":[{"candidateId":"t1-c3","scheduledEndDatetime":"\#(c3End)"}],"examId":"t1","scheduledEndDatetime":"\#(planned.iso8601)"}"#
            )
            let c3Frames = await browsers[2].frames(atLeast: 1)
            #expect(c3Frames == [#"{"type":"exam_time","examId":"t1","scheduledEndDatetime":"\#(c3End)"}"#])

            // A preview for everyone changes nothing and lists each affected candidate's new end.
            let preview = try await client.call(.post, "/api/exams/t1/time", json: #"{"addMinutes":5,"reason":"power cut","preview":true}"#)
            let affected = Self.json(preview)["affected"] as? [[String: String]]
            #expect(
                affected?.map { $0["scheduledEndDatetime"] } == [
                    planned.adding(seconds: 300).iso8601, planned.adding(seconds: 300).iso8601, planned.adding(seconds: 900).iso8601,
                ])
            #expect(Self.json(try await client.call(.get, "/api/exams/t1"))["scheduledEndDatetime"] as? String == planned.iso8601)

            // Everyone: 5 more minutes; the accommodation keeps its extra 10.
            let everyone = try await client.call(.post, "/api/exams/t1/time", json: #"{"addMinutes":5,"reason":"power cut"}"#)
            #expect(everyone.status == .ok)
            let newEnd = planned.adding(seconds: 300).iso8601
            #expect(Self.json(everyone)["scheduledEndDatetime"] as? String == newEnd)
            for browser in browsers.prefix(2) {
                #expect(await browser.frames(atLeast: 1) == [#"{"type":"exam_time","examId":"t1","scheduledEndDatetime":"\#(newEnd)"}"#])
            }
            let c3Again = await browsers[2].frames(atLeast: 2)
            #expect(c3Again.last == #"{"type":"exam_time","examId":"t1","scheduledEndDatetime":"\#(planned.adding(seconds: 900).iso8601)"}"#)
            let proctorFrames = await proctorBrowser.frames(atLeast: 2)
            #expect(proctorFrames.last == #"{"type":"exam_time","examId":"t1","scheduledEndDatetime":"\#(newEnd)"}"#)

            // The roster shows each one's planned end, and who has the new time.
            try await eventually("every page acknowledged its new time") {
                let roster = Self.json(try await client.call(.get, "/api/exams/t1/roster"))
                let rows = roster["candidates"] as? [[String: Any]] ?? []
                return rows.count == 3 && rows.allSatisfy { $0["hasNewTime"] as? Bool == true }
            }
            let rows = Self.json(try await client.call(.get, "/api/exams/t1/roster"))["candidates"] as? [[String: Any]] ?? []
            #expect(rows.map { $0["scheduledEndDatetime"] as? String } == [newEnd, newEnd, planned.adding(seconds: 900).iso8601])

            // Refusals: a clear 4xx, nothing changed.
            let refusals: [(String, Int, String)] = [
                (#"{"addMinutes":5}"#, 400, "reason_required"),
                (#"{"addMinutes":5,"scheduledEndDatetime":"2099-01-01T00:00:00Z","reason":"r"}"#, 400, "invalid_time"),
                (#"{"scheduledEndDatetime":"2001-01-01T00:00:00Z","reason":"r"}"#, 400, "invalid_time"),
                (#"{"scheduledEndDatetime":"tomorrow","reason":"r"}"#, 400, "invalid_time"),
                (#"{"addMinutes":0,"reason":"r"}"#, 400, "invalid_minutes"),
                (#"{"addMinutes":5,"candidateIds":["nobody"],"reason":"r"}"#, 404, "candidate_not_found"),
                (#"{"addMinutes":5,"candidateIds":["t1-c1","t1-c1"],"reason":"r"}"#, 400, "duplicate_id"),
            ]
            for (body, status, code) in refusals {
                let response = try await client.call(.post, "/api/exams/t1/time", json: body)
                #expect(response.status.code == status, "\(body)")
                #expect(Self.errorCode(response) == code, "\(body)")
            }
            #expect(try await client.call(.post, "/api/exams/t1/time", json: #"{"addMinutes":5,"reason":"r"}"#, headers: [:]).status == .unauthorized)
            #expect(Self.json(try await client.call(.get, "/api/exams/t1"))["scheduledEndDatetime"] as? String == newEnd)
            let audit = String(buffer: try await client.call(.get, "/api/exams/t1/audit").body)
            #expect(audit.contains(#""action":"change_time""#) && audit.contains(#""reason":"power cut""#))

            _ = try await client.end("t1")
            let ended = try await client.call(.post, "/api/exams/t1/time", json: #"{"addMinutes":5,"reason":"r"}"#)
            #expect(ended.status == .conflict)
            (browsers + [proctorBrowser]).forEach { $0.close() }
        }
    }

    @Test(
        "a candidate ended alone: only its browsers told with its time, DB and state store agree, the exam's end tells the rest",
        arguments: TestNode.engines
    )
    func candidateEndsAlone(_ engines: String) async throws {
        // The page's final save comes well within the grace window even on a loaded machine
        // (10 s ran out once in a full run's first burst): the window itself is tested below.
        try await TestNode.on(engines, answerGraceSeconds: 120) { test in
            try await test.node.application.test(.live) { client in
                let port = try #require(client.port)
                let (ids, _) = try await Self.exam(client, "s1", candidates: 3)
                let tokens = try await client.tokens("s1", role: "candidate", ids: ids)
                let browsers = tokens.map { TestBrowser(port: port, token: $0, ackExamEnd: true, reply: Self.page) }
                await eventually("3 browsers connected") { test.node.hub.connectionCount == 3 }

                let response = try await client.call(.post, "/api/exams/s1/candidates/s1-c1/end", json: #"{"reason":"ill"}"#)
                #expect(response.status == .ok)
                let body = Self.json(response)
                let time = try #require(body["endDatetime"] as? String)
                #expect(body["result"] as? String == "completed")
                #expect(body["status"] as? String == "completed")
                let frame = #"{"type":"exam_end","examId":"s1","message":"시험이 종료되었습니다.","timestamp":"\#(time)"}"#
                #expect(await browsers[0].frames(atLeast: 1) == [frame])
                #expect(await browsers[1].frames(over: .milliseconds(300)).isEmpty, "the others keep working")

                let again = Self.json(try await client.call(.post, "/api/exams/s1/candidates/s1-c1/end"))
                #expect(again["result"] as? String == "already_completed")
                #expect(again["endDatetime"] as? String == time)
                #expect(try await client.call(.post, "/api/exams/s1/candidates/nobody/end").status == .notFound)

                // The DB and the state store say completed at that one time; the exam still runs.
                let candidate = try #require(try await test.backends.store.candidates(ids: ["s1-c1"]).first)
                #expect(candidate.status == .completed)
                #expect(candidate.lastActiveTime?.iso8601 == time)
                let key = try await test.backends.state.candidates(["s1-c1"])["s1-c1"]
                #expect(key == CandidateStateValue(status: .completed, lastActiveTime: Timestamp(iso8601: time)))
                #expect(try await test.backends.store.exam("s1")?.status == .inProgress)

                // A page of c1 opened again is told at once with its own time; its session says ended.
                let reopened = TestBrowser(port: port, token: tokens[0])
                #expect(await reopened.frames(atLeast: 1) == [frame])
                let session = Self.json(try await client.call(.get, "/api/session", headers: [.authorization: "Bearer \(tokens[0])"]))
                #expect(session["status"] as? String == "completed")
                #expect(session["endDatetime"] as? String == time)

                // The page's final save is its `saved` step; told and locked came over the socket.
                let final = try await client.call(
                    .put, "/api/answers", json: #"{"answers":{"1":"2"},"final":true}"#,
                    headers: [.authorization: "Bearer \(tokens[0])", .contentType: "application/json"]
                )
                #expect(final.status == .ok)
                try await eventually("c1 told, locked and saved") {
                    let delivery = Self.json(try await client.call(.get, "/api/exams/s1/delivery"))
                    let counts = delivery["counts"] as? [String: Int]
                    return counts == ["candidates": 3, "told": 1, "locked": 1, "saved": 1]
                }

                // The exam's end tells the other two with the exam's time, and c1 not again.
                let end = try await client.end("s1")
                for browser in browsers.dropFirst() {
                    let frames = await browser.frames(atLeast: 1)
                    #expect(frames == [#"{"type":"exam_end","examId":"s1","message":"시험이 종료되었습니다.","timestamp":"\#(end.endDatetime)"}"#])
                }
                #expect(await browsers[0].frames(over: .milliseconds(300)) == [frame], "told once")
                try await eventually("every candidate told and locked; two not saved yet") {
                    let delivery = Self.json(try await client.call(.get, "/api/exams/s1/delivery"))
                    let missing = delivery["missing"] as? [String: [String]]
                    return (delivery["counts"] as? [String: Int]) == ["candidates": 3, "told": 3, "locked": 3, "saved": 1]
                        && missing == ["told": [], "locked": [], "saved": ["s1-c2", "s1-c3"]]
                }
                let rows = try await test.backends.store.candidates(examId: "s1")
                #expect(rows.map { $0.lastActiveTime?.iso8601 } == [time, end.endDatetime, end.endDatetime])
                let metrics = String(buffer: try await client.call(.get, "/metrics").body)
                #expect(metrics.contains("exambell_end_to_locked_seconds_count 3"))
                #expect(metrics.contains("exambell_end_to_saved_seconds_count 1"))
                (browsers + [reopened]).forEach { $0.close() }
            }
        }
    }

    @Test("hand-in: the candidate ends alone with its answers; late saves are kept as late submissions")
    func handIn() async throws {
        let test = try await TestNode(answerGraceSeconds: 1)
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let (ids, _) = try await Self.exam(client, "h1", candidates: 2)
            let tokens = try await client.tokens("h1", role: "candidate", ids: ids)
            let proctor = try await client.tokens("h1", role: "proctor", ids: ["h1-p1"])[0]
            let browser = TestBrowser(port: port, token: tokens[0], ackExamEnd: true, reply: Self.page)
            await eventually("browser connected") { test.node.hub.connectionCount == 1 }
            let mine: HTTPFields = [.authorization: "Bearer \(tokens[0])", .contentType: "application/json"]
            #expect(try await client.call(.put, "/api/answers", json: #"{"answers":{"1":"3"}}"#, headers: mine).status == .ok)

            let forbidden = try await client.call(.post, "/api/hand-in", headers: [.authorization: "Bearer \(proctor)"])
            #expect(forbidden.status == .forbidden)
            #expect(try await client.call(.post, "/api/hand-in", headers: [:]).status == .unauthorized)
            let handed = try await client.call(.post, "/api/hand-in", headers: mine)
            #expect(handed.status == .ok)
            let time = try #require(Self.json(handed)["endDatetime"] as? String)
            #expect(Self.json(handed)["result"] as? String == "completed")
            #expect(await browser.frames(atLeast: 1).first?.contains(#""timestamp":"\#(time)""#) == true)
            #expect(Self.json(try await client.call(.post, "/api/hand-in", headers: mine))["result"] as? String == "already_completed")
            let audit = String(buffer: try await client.call(.get, "/api/exams/h1/audit").body)
            let handIns = try await test.backends.store.auditLog(examId: "h1").filter { $0.action == "end_candidate" }
            #expect(handIns.map(\.actor) == ["h1-c1"])
            #expect(handIns.first?.reason == "handed in")
            _ = audit

            // After its grace window a save is refused and kept, content and arrival time, never dropped.
            try await Task.sleep(for: .seconds(2.5))
            let late = try await client.call(.put, "/api/answers", json: #"{"answers":{"2":"4"}}"#, headers: mine)
            #expect(late.status == .conflict)
            #expect(Self.errorCode(late) == "exam_ended")
            #expect(try await test.backends.store.answers(candidateId: "h1-c1") == [1: "3"])
            let kept = Self.json(try await client.call(.get, "/api/exams/h1/late-submissions"))["lateSubmissions"] as? [[String: Any]]
            #expect(kept?.count == 1)
            #expect(kept?.first?["answers"] as? [String: String] == ["2": "4"])
            #expect(kept?.first?["candidateId"] as? String == "h1-c1")
            // The operator decides once, with a reason: accepted answers join the sheet.
            let submission = try #require(kept?.first?["id"] as? Int)
            let decide = "/api/exams/h1/late-submissions/\(submission)"
            #expect(try await client.call(.post, decide, json: #"{"decision":"accept"}"#).status == .badRequest, "a reason is required")
            #expect(try await client.call(.post, decide, json: #"{"decision":"maybe","reason":"r"}"#).status == .badRequest)
            #expect(
                try await client.call(.post, "/api/exams/h1/late-submissions/999", json: #"{"decision":"accept","reason":"r"}"#).status == .notFound)
            #expect(
                try await client.call(.post, "/api/exams/h1/late-submissions/x", json: #"{"decision":"accept","reason":"r"}"#).status == .badRequest)
            let accepted = try await client.call(.post, decide, json: #"{"decision":"accept","reason":"network outage in room 2"}"#)
            #expect(accepted.status == .ok)
            #expect(Self.json(accepted)["decision"] as? String == "accepted")
            #expect(try await test.backends.store.answers(candidateId: "h1-c1") == [1: "3", 2: "4"])
            #expect(try await client.call(.post, decide, json: #"{"decision":"reject","reason":"r"}"#).status == .conflict)
            // The other candidate still works.
            let other: HTTPFields = [.authorization: "Bearer \(tokens[1])", .contentType: "application/json"]
            #expect(try await client.call(.put, "/api/answers", json: #"{"answers":{"1":"1"}}"#, headers: other).status == .ok)
            browser.close()
        }
    }

    @Test("a candidate's own planned end ends it alone; the exam's end waits for a later accommodation, then ends the rest")
    func plannedEnds() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            // The accommodation first (10 more minutes for c3), then everyone's end brought to a
            // few seconds from now: c3's own end moves with it and stays 10 minutes later.
            let (ids, _) = try await Self.exam(client, "p1", candidates: 3)
            #expect(
                try await client.call(
                    .post, "/api/exams/p1/time", json: #"{"addMinutes":10,"candidateIds":["\#(ids[2])"],"reason":"accommodation"}"#
                ).status == .ok
            )
            let planned = Timestamp.now().adding(seconds: 5)
            let moved = try await client.call(
                .post, "/api/exams/p1/time", json: #"{"scheduledEndDatetime":"\#(planned.iso8601)","reason":"early end"}"#
            )
            #expect(moved.status == .ok)
            try await eventually("c1 and c2 ended alone at the exam's planned end", within: .seconds(30)) {
                try await test.backends.store.candidateCounts(examId: "p1") == [.completed: 2, .inProgress: 1]
            }
            #expect(try await test.backends.store.candidates(ids: [ids[2]]).first?.scheduledEndDatetime == planned.adding(seconds: 600))
            let plan = try #require(try await test.backends.store.exam("p1"))
            #expect(plan.status == .inProgress, "the exam waits for the accommodated candidate")
            let rows = try await test.backends.store.candidates(examId: "p1")
            #expect(rows[0].lastActiveTime.map { $0 >= planned } == true)
            // Ending the exam now ends the one left, at the exam's time.
            let end = try await client.end("p1")
            let after = try await test.backends.store.candidates(examId: "p1")
            #expect(after.map(\.status) == [.completed, .completed, .completed])
            #expect(after[2].lastActiveTime?.iso8601 == end.endDatetime)
            let audit = try await test.backends.store.auditLog(examId: "p1").filter { $0.action == "end_candidate" }
            #expect(audit.map(\.actor) == ["scheduler", "scheduler"])
        }
    }

    @Test("announcements: to everyone or listed candidates, by the operator or the exam's proctor; who saw them on the roster")
    func announcements() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let (ids, _) = try await Self.exam(client, "a1", candidates: 2)
            let tokens = try await client.tokens("a1", role: "candidate", ids: ids)
            let proctor = try await client.tokens("a1", role: "proctor", ids: ["a1-p1"])[0]
            _ = try await Self.exam(client, "a2", candidates: 1)
            let otherProctor = try await client.tokens("a2", role: "proctor", ids: ["a2-p1"])[0]
            let first = TestBrowser(port: port, token: tokens[0], reply: Self.page)
            let second = TestBrowser(port: port, token: tokens[1])
            await eventually("2 browsers connected") { test.node.hub.connectionCount == 2 }

            let all = try await client.call(.post, "/api/exams/a1/announcements", json: #"{"message":"10분 남았습니다."}"#)
            #expect(all.status == .ok)
            let allId = try #require(Self.json(all)["announcementId"] as? String)
            let byProctor = try await client.call(
                .post, "/api/exams/a1/announcements", json: #"{"message":"Room 2: raise your hand","candidateIds":["\#(ids[1])"]}"#,
                headers: [.authorization: "Bearer \(proctor)", .contentType: "application/json"]
            )
            #expect(byProctor.status == .ok)
            let firstFrames = await first.frames(atLeast: 1)
            #expect(firstFrames.count == 1)
            #expect(
                firstFrames.first?.hasPrefix(
                    #"{"type":"announcement","examId":"a1","announcementId":"\#(allId)","message":"10분 남았습니다.","timestamp":""#) == true)
            #expect(await second.frames(atLeast: 2).count == 2)
            #expect(await first.frames(over: .milliseconds(300)).count == 1, "the listed notice reached only its candidate")

            let refused = try await client.call(
                .post, "/api/exams/a1/announcements", json: #"{"message":"hi"}"#,
                headers: [.authorization: "Bearer \(otherProctor)", .contentType: "application/json"]
            )
            #expect(refused.status == .forbidden)
            #expect(try await client.call(.post, "/api/exams/a1/announcements", json: #"{"message":"  "}"#).status == .badRequest)
            #expect(try await client.call(.post, "/api/exams/a1/announcements", json: #"{"message":"x","candidateIds":["zz"]}"#).status == .notFound)

            // A page that was away reads the notices meant for it.
            let mine = Self.json(try await client.call(.get, "/api/announcements", headers: [.authorization: "Bearer \(tokens[0])"]))
            #expect((mine["announcements"] as? [[String: Any]])?.count == 1)
            try await eventually("the roster shows who saw the first notice") {
                let roster = Self.json(try await client.call(.get, "/api/exams/a1/roster"))
                let notices = roster["announcements"] as? [[String: Any]] ?? []
                let rows = roster["candidates"] as? [[String: Any]] ?? []
                return notices.first?["seen"] as? Int == 1 && rows.first?["announcementsSeen"] as? [String] == [allId]
            }
            first.close()
            second.close()
        }
    }
}
