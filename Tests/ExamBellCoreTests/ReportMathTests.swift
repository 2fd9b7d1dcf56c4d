import ExamBellCore
import ExamBellProof
import Testing

/// The exam report's arithmetic without a database: connection spans merged across nodes,
/// the time changes that applied to a candidate, CSV cells a spreadsheet cannot run.
@Suite("The exam report's rules", .timeLimit(.minutes(1)))
struct ReportMathTests {
    func span(_ instance: String, _ start: Int64, _ end: Int64?) -> ConnectionSpan {
        ConnectionSpan(candidateId: "c1", instance: instance, start: start * 1000, end: end.map { $0 * 1000 })
    }

    @Test("connected all along, over two tabs and a move between nodes: no disconnect, nothing offline")
    func continuous() {
        let spans = [span("a", 0, 40), span("b", 30, nil), span("a", 10, 20)]
        #expect(Connectivity.measure(spans, until: 100_000, lastSeen: ["b": 200_000]) == Connectivity(disconnects: 0, offlineSeconds: 0))
    }

    @Test("gaps between spans on any node count once each; offline at the end counts to the end")
    func gaps() {
        // 0-10 on a, 15-30 on b (5 s away), 30-50 on a, then nothing until the end at 80.
        let spans = [span("a", 0, 10), span("b", 15, 30), span("a", 30, 50)]
        #expect(Connectivity.measure(spans, until: 80_000, lastSeen: [:]) == Connectivity(disconnects: 2, offlineSeconds: 35))
        // Time before the first connection is not offline; a span after the end does not count.
        #expect(
            Connectivity.measure([span("a", 20, 30), span("a", 90, nil)], until: 30_000, lastSeen: ["a": 100_000])
                == .init(disconnects: 0, offlineSeconds: 0))
        #expect(Connectivity.measure([span("a", 90, nil)], until: 30_000, lastSeen: [:]) == nil, "never connected before its end")
    }

    @Test("an open span lasts while its node is heard; a silent node ends it at its last heartbeat; an unknown one where the candidate came back")
    func openSpans() {
        #expect(Connectivity.measure([span("a", 0, nil)], until: 60_000, lastSeen: ["a": 60_000]) == .init(disconnects: 0, offlineSeconds: 0))
        #expect(Connectivity.measure([span("a", 0, nil)], until: 60_000, lastSeen: ["a": 20_000]) == .init(disconnects: 1, offlineSeconds: 40))
        #expect(
            Connectivity.measure([span("gone", 0, nil), span("b", 12, nil)], until: 60_000, lastSeen: ["b": 60_000])
                == .init(disconnects: 0, offlineSeconds: 0))
    }

    @Test("a time change applies to the candidates it lists, or to everyone still running at its time, with each one's new end")
    func timeChanges() {
        let plan = ExamPlan(
            examId: "e1", title: "T", status: .completed, createdAt: Timestamp(secondsSince1970: 0), endDatetime: Timestamp(secondsSince1970: 5000))
        let running = Candidate(candidateId: "c1", examId: "e1", name: "A", status: .completed)
        let endedBefore = Candidate(candidateId: "c2", examId: "e1", name: "B", status: .completed, lastActiveTime: Timestamp(secondsSince1970: 900))
        let everyone = TimeChangeRecord(
            at: Timestamp(secondsSince1970: 1000), actor: "kim", reason: nil, everyone: true, scheduledEndDatetime: Timestamp(secondsSince1970: 4000),
            ends: ["c3": Timestamp(secondsSince1970: 4600)])
        #expect(everyone.end(for: running, in: plan) == Timestamp(secondsSince1970: 4000))
        #expect(everyone.end(for: endedBefore, in: plan) == nil, "c2 had ended before it")
        let accommodated = Candidate(candidateId: "c3", examId: "e1", name: "C", status: .completed)
        #expect(everyone.end(for: accommodated, in: plan) == Timestamp(secondsSince1970: 4600))
        let listed = TimeChangeRecord(
            at: Timestamp(secondsSince1970: 1000), actor: "kim", reason: "x", everyone: false,
            scheduledEndDatetime: Timestamp(secondsSince1970: 3000),
            ends: ["c2": Timestamp(secondsSince1970: 3300)])
        #expect(listed.end(for: running, in: plan) == nil)
    }

    @Test("CSV cells: formulas defused with a quote, commas, quotes and line breaks quoted")
    func csvCells() {
        #expect(ExamReport.cell("=SUM(A1)") == "'=SUM(A1)")
        #expect(ExamReport.cell("+1") == "'+1" && ExamReport.cell("-2") == "'-2" && ExamReport.cell("@cmd") == "'@cmd")
        #expect(ExamReport.cell("\tx") == "'\tx")
        #expect(ExamReport.cell("Kim, \"Min\"") == #""Kim, ""Min""""#)
        #expect(ExamReport.cell("a\r\nb") == "\"a\r\nb\"")
        #expect(ExamReport.cell("=a,b") == #""'=a,b""#)
        #expect(ExamReport.cell("2026-12-07T10:00:00Z") == "2026-12-07T10:00:00Z")
        let report = ExamReport(examId: "e1", status: "completed", generatedAt: "", receiptsPending: 0, candidates: [])
        #expect(report.csv == ExamReport.columns.joined(separator: ",") + "\r\n")
    }
}
