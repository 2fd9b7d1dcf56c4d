import ExamBellTestSupport
import ExamBellCore
import ExamBellSQL
import Foundation
import Testing

@Suite("SQLite store")
struct SQLiteStoreTests {
    @Test("conformance", arguments: ExamStoreConformance.cases)
    func conformance(_ check: ExamStoreConformance.Case) async throws {
        let store = try await SQLiteExamStore.open(path: ":memory:")
        try await check.run(store)
        try await store.shutdown()
    }

    @Test("data survives reopening the same file, and migrations run once")
    func reopen() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("exambell-\(UUID().uuidString)/db.sqlite").path
        let first = try await SQLiteExamStore.open(path: path)
        _ = try await first.createExam(planId: "e1", title: "A", actor: "admin", at: .now())
        try await first.shutdown()
        let second = try await SQLiteExamStore.open(path: path)
        #expect(try await second.exam("e1")?.title == "A")
        try await second.shutdown()
    }
}
