import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellProof
import ExamBellRuntime
import ExamBellServer
import ExamBellSocket
import ExamBellTestSupport
import ExamBellWeb
import Foundation
import HummingbirdTesting
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The exam report (DESIGN, "Proof") of a scripted exam day on PostgreSQL, Redis and two socket
/// nodes as separate processes: every column is checked against what the test did.
@Suite("The exam report", .timeLimit(.minutes(3)))
struct ReportTests {
    @Test(
        "a candidate reconnecting in a loop records at most 500 spans on a node: 520 connections leave 500 spans and one merged span"
    )
    func spanBudget() async throws {
        let test = try await TestNode()
        try await test.node.application.test(.live) { client in
            let port = try #require(client.port)
            let ids = try await client.makeExam("e1", candidates: 1)
            let token = try await client.tokens("e1", role: "candidate", ids: ids)[0]
            for _ in 0..<520 {
                let browser = TestBrowser(port: port, token: token)
                await eventually("connected") { test.node.hub.connectionCount == 1 }
                browser.close()
                await eventually("gone") { test.node.hub.connectionCount == 0 }
            }
            var spans: [ConnectionSpan] = []
            try await eventually("every span written") {
                spans = try await test.backends.state.connections(examId: "e1")
                return spans.count == 501 && spans.allSatisfy { $0.end != nil }
            }
            #expect(spans.count == 501, "500 spans of their own and one merged span past the budget")
            let starts = spans.map(\.start).sorted()
            // The merged span ends at the last close and begins at the first connection past the
            // budget (every span of its own ended before that one began).
            let merged = try #require(spans.max { $0.end! < $1.end! })
            #expect(merged.start == starts[500], "the merged span begins where the budget ran out")
        }
    }

    @Test(
        "a scripted day (time change for two, a hand-in, an operator's end, one candidate offline at the end, one moving between socket nodes): every column matches"
    )
    func scriptedDay() async throws {
        let cluster = try await ClusterTests.Cluster.start(socketNodes: 2, webEnvironment: ["EXAMBELL_ANSWER_GRACE": "1"])
        defer { cluster.stopAll() }
        let planned = Timestamp.now().adding(seconds: 3600)
        #expect(
            try await cluster.api("POST", "/api/exams", #"{"examId":"r1","title":"Report","scheduledEndDatetime":"\#(planned.iso8601)"}"#).0
                == 201)
        // Names a spreadsheet would misread: a formula and a comma with quotes.
        let people = [
            #"{"candidateId":"r1-c1","name":"Ada"}"#, #"{"candidateId":"r1-c2","name":"Ben"}"#, #"{"candidateId":"r1-c3","name":"Cy"}"#,
            #"{"candidateId":"r1-c4","name":"Kim, \"Min\""}"#, #"{"candidateId":"r1-c5","name":"=SUM(1)"}"#,
        ]
        #expect(try await cluster.api("POST", "/api/exams/r1/candidates", #"{"candidates":[\#(people.joined(separator: ","))]}"#).0 == 200)
        #expect(try await cluster.api("POST", "/api/exams/r1/start").0 == 200)
        let ids = (1...5).map { "r1-c\($0)" }
        let tokens = try await cluster.tokens("r1", role: "candidate", ids: ids)
        let (node1, node2) = (cluster.sockets[0].port, cluster.sockets[1].port)
        var browsers = [node1, node2, node1, node2, node1].enumerated().map { index, port in
            TestBrowser(port: port, token: tokens[index], ackExamEnd: true, reply: ExamDayTests.page)
        }
        defer { browsers.forEach { $0.close() } }
        try await eventually("five browsers over both socket nodes") {
            try await cluster.api("GET", "/api/exams/r1").1.contains(#""connected":{"candidates":5"#)
        }
        #expect(try await cluster.api("PUT", "/api/answers", #"{"answers":{"1":"2","2":"3"}}"#, bearer: tokens[0]).0 == 200)
        #expect(try await cluster.api("PUT", "/api/answers", #"{"answers":{"1":"4"}}"#, bearer: tokens[2]).0 == 200)

        // Five more minutes for c1 and c2.
        let (changed, _) = try await cluster.api(
            "POST", "/api/exams/r1/time", #"{"addMinutes":5,"candidateIds":["r1-c1","r1-c2"],"reason":"accommodation"}"#)
        #expect(changed == 200)

        // c5 drops off node 1 and comes back on node 2 three seconds later.
        browsers[4].close()
        let c5Gone = Date()
        try await eventually("c5 counted gone") { try await cluster.api("GET", "/api/exams/r1").1.contains(#""connected":{"candidates":4"#) }
        try await Task.sleep(for: .seconds(3))
        let c5Back = Date()
        browsers[4] = TestBrowser(port: node2, token: tokens[4], ackExamEnd: true, reply: ExamDayTests.page)
        try await eventually("c5 counted back") { try await cluster.api("GET", "/api/exams/r1").1.contains(#""connected":{"candidates":5"#) }

        // c3 hands in; an operator ends c2 alone.
        #expect(try await cluster.api("POST", "/api/hand-in", bearer: tokens[2]).0 == 200)
        let (ended, endedBody) = try await cluster.api("POST", "/api/exams/r1/candidates/r1-c2/end", #"{"reason":"ill"}"#)
        #expect(ended == 200)
        let c2End = try #require(try JSONSerialization.jsonObject(with: Data(endedBody.utf8)) as? [String: Any])["endDatetime"] as? String

        // c4 goes offline and stays offline through the end.
        browsers[3].close()
        let c4Gone = Date()
        try await eventually("c4 counted gone") { try await cluster.api("GET", "/api/exams/r1").1.contains(#""connected":{"candidates":4"#) }
        try await Task.sleep(for: .seconds(3))
        let (status, body) = try await cluster.api("POST", "/api/exams/r1/end", #"{"reason":"done"}"#)
        #expect(status == 200)
        let examEnd = try JSONDecoder().decode(EndBody.self, from: Data(body.utf8)).endDatetime

        // The report once every receipt is issued (grace window 1 s) and the end's receipts are in.
        var report: ExamReport?
        try await eventually("the report has every receipt and the told and locked of those online", within: .seconds(30)) {
            let (code, text) = try await cluster.api("GET", "/api/exams/r1/report")
            guard code == 200 else { return false }
            report = try JSONDecoder().decode(ExamReport.self, from: Data(text.utf8))
            let rows = report?.candidates ?? []
            return report?.receiptsPending == 0 && rows.filter { $0.candidateId != "r1-c4" }.allSatisfy { $0.told != nil && $0.locked != nil }
        }
        let rows = Dictionary(uniqueKeysWithValues: try #require(report).candidates.map { ($0.candidateId, $0) })
        #expect(rows.keys.sorted() == ids)
        let (c1, c2, c3, c4, c5) = (rows["r1-c1"]!, rows["r1-c2"]!, rows["r1-c3"]!, rows["r1-c4"]!, rows["r1-c5"]!)
        for row in rows.values { #expect(row.status == "completed") }

        // How and when each ended.
        #expect([c1, c4, c5].allSatisfy { $0.endDatetime == examEnd && $0.endedBy == "exam" })
        #expect(c2.endedBy == "operator" && c2.endDatetime == c2End)
        #expect(c3.endedBy == "hand_in" && c3.endDatetime != nil && c3.endDatetime! <= c2End!)

        // The time change applied to c1 and c2 only, by the admin, to planned + 5 min.
        let moved = planned.adding(seconds: 300).iso8601
        for row in [c1, c2] {
            #expect(row.timeChanges.count == 1)
            #expect(row.timeChanges.first?.by == "admin" && row.timeChanges.first?.scheduledEndDatetime == moved)
            #expect(row.timeChanges.first?.reason == "accommodation")
            #expect(row.timeChanges.first.flatMap { Timestamp(iso8601: $0.at) } != nil)
        }
        #expect([c3, c4, c5].allSatisfy { $0.timeChanges.isEmpty })

        // Told and locked: everyone online; c4 was offline at the end and was neither.
        #expect(c4.told == nil && c4.locked == nil)

        // Saves and receipts: the hash of the answers as stored, for everyone.
        #expect(c1.answeredCount == 2 && c1.lastSavedAt != nil)
        #expect(c3.answeredCount == 1 && c3.lastSavedAt != nil)
        #expect(c2.answeredCount == 0 && c2.lastSavedAt == nil)
        #expect(c1.answersSha256 == Receipt.answersSha256([1: "2", 2: "3"]))
        #expect(c3.answersSha256 == Receipt.answersSha256([1: "4"]))
        #expect(c2.answersSha256 == Receipt.answersSha256([:]))
        #expect(rows.values.allSatisfy { $0.answersSha256 != nil })

        // Disconnects and time offline, as the socket nodes recorded them.
        #expect(c1.disconnects == 0 && c1.offlineSeconds == 0 && c2.disconnects == 0 && c3.disconnects == 0)
        #expect(c5.disconnects == 1)
        let c5Offline = try #require(c5.offlineSeconds)
        #expect(c5Offline >= 2 && Double(c5Offline) <= Date().timeIntervalSince(c5Gone), "c5 was away from \(c5Gone) to after \(c5Back)")
        #expect(c4.disconnects == 1)
        let c4Expected = Double(try #require(Timestamp(iso8601: examEnd)).secondsSince1970) - c4Gone.timeIntervalSince1970
        #expect(abs(Double(try #require(c4.offlineSeconds)) - c4Expected) <= 2, "c4 offline from \(c4Gone) to the end \(examEnd)")

        // The CSV: the same rows, formula-like cells defused.
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(cluster.loadBalancerPort)/api/exams/r1/report?format=csv")!)
        request.setValue("Bearer \(ClusterTests.adminToken)", forHTTPHeaderField: "Authorization")
        let (data, response) = try await URLSession.shared.data(for: request)
        #expect((response as? HTTPURLResponse)?.value(forHTTPHeaderField: "Content-Type")?.hasPrefix("text/csv") == true)
        let csv = String(decoding: data, as: UTF8.self)
        print("The scripted day's report (CSV):\n\(csv)")
        let lines = csv.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        #expect(lines.first == ExamReport.columns.joined(separator: ","))
        #expect(lines.count == 6)
        #expect(lines.contains { $0.hasPrefix("r1-c5,'=SUM(1),completed,") })
        #expect(lines.contains { $0.hasPrefix(#"r1-c4,"Kim, ""Min""",completed,"#) })
        #expect(lines.contains { $0.hasPrefix("r1-c1,Ada,completed,\(examEnd),exam,") && $0.contains("by admin: \(moved) (accommodation)") })
        #expect(try await cluster.api("GET", "/api/exams/r1/report?format=xml").0 == 400)
        #expect(try await cluster.api("GET", "/api/exams/r1/report", bearer: tokens[0]).0 == 401)
        #expect(try await cluster.api("GET", "/api/exams/nope/report").0 == 404)
    }
}
