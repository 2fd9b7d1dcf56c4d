import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellRuntime
import ExamBellSQL
import ExamBellServer
import ExamBellSocket
import ExamBellTestSupport
import ExamBellWeb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

extension ClusterTests {
    @Test(
        "Redis Sentinel under a web process and two socket processes: the primary crashes while an exam of 1,000 browsers ends; every browser is told and the keys hold the end on the promoted replica"
    )
    func failoverAcrossProcesses() async throws {
        let sentinel = try await SentinelTestCluster.start()
        defer { sentinel.stop() }
        let cluster = try await Cluster.start(socketNodes: 2, sentinel: sentinel)
        defer { cluster.stopAll() }
        let ids = (1...1_000).map { "f1-c\($0)" }
        let people = ids.map { #"{"candidateId":"\#($0)","name":"\#($0)"}"# }.joined(separator: ",")
        #expect(try await cluster.api("POST", "/api/exams", #"{"examId":"f1","title":"Failover"}"#).0 == 201)
        #expect(try await cluster.api("POST", "/api/exams/f1/candidates", #"{"candidates":[\#(people)]}"#).0 == 200)
        #expect(try await cluster.api("POST", "/api/exams/f1/proctors", #"{"proctors":[{"proctorId":"f1-p1","name":"P"}]}"#).0 == 200)
        #expect(try await cluster.api("POST", "/api/exams/f1/start").0 == 200)
        let tokens = try await cluster.tokens("f1", role: "candidate", ids: ids) + cluster.tokens("f1", role: "proctor", ids: ["f1-p1"])
        // Half on each socket process.
        let browsers = tokens.enumerated().map { TestBrowser(port: cluster.sockets[$0.offset % 2].port, token: $0.element) }
        defer { browsers.forEach { $0.close() } }
        try await eventually("1,000 candidates and the proctor connected, on both nodes", within: .seconds(90)) {
            try await cluster.api("GET", "/api/exams/f1").1.contains(#""connected":{"candidates":1000,"proctors":1}"#)
        }

        // The end and the crash at once.
        async let ending = cluster.api("POST", "/api/exams/f1/end", #"{"reason":"failover"}"#)
        sentinel.killPrimary()
        let (status, body) = try await ending
        #expect(status == 200, "\(body)")
        let end = try JSONDecoder().decode(EndBody.self, from: Data(body.utf8))
        for browser in browsers {
            #expect(await browser.frames(atLeast: 1, within: .seconds(90)) == [frame("f1", end.endDatetime)])
        }
        try await sentinel.waitForEndOnPromotedReplica("f1", candidates: ids, end: end.endDatetime)
        let stored = try await PostgresExamStore.withStore(url: cluster.databaseURL) { store in
            try await eventually("the outbox is empty", within: .seconds(60)) { try await store.outboxBacklog() == 0 }
            return try await store.exam("f1")?.endDatetime?.iso8601
        }
        #expect(stored == end.endDatetime)
    }
}
