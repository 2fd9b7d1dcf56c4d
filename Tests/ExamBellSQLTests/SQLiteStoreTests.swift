import ExamBellCore
import ExamBellSQL
import ExamBellTestSupport
import Foundation
import Testing

@Suite("SQLite store", .timeLimit(.minutes(10)))
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
        _ = try await first.createExam(examId: "e1", title: "A", actor: "admin", at: .now())
        try await first.shutdown()
        let second = try await SQLiteExamStore.open(path: path)
        #expect(try await second.exam("e1")?.title == "A")
        try await second.shutdown()
    }
}

@Suite("PostgreSQL store", .timeLimit(.minutes(10)))
struct PostgresStoreTests {
    /// A migrated store on a database of its own in the test cluster.
    ///
    /// The conformance cases check what the store does, not its time bounds (EndTruthTests
    /// does, on their own nodes): the lock and statement waits are longer than the product's
    /// 5 s and 10 s, which 20 transactions queued on one row passed in a full run's first
    /// burst, when ~100 tests share two cores with the test cluster (a refusal that changed
    /// nothing, not a wrong answer).
    static var conformanceTimeouts: DatabaseTimeouts {
        var timeouts = DatabaseTimeouts()
        timeouts.lockWait = .seconds(20)
        timeouts.statement = .seconds(25)
        timeouts.call = .seconds(30)
        return timeouts
    }

    @Test("conformance", arguments: ExamStoreConformance.cases)
    func conformance(_ check: ExamStoreConformance.Case) async throws {
        try await PostgresTestDatabase.withFreshStore(timeouts: Self.conformanceTimeouts) { store in try await check.run(store) }
    }

    @Test("several nodes migrating at once apply each migration once")
    func concurrentMigrations() async throws {
        let url = try await PostgresTestDatabase.freshDatabaseURL()
        // Four nodes open the same empty database at once; each migrates it, then makes its exam.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for node in 0..<4 {
                group.addTask {
                    try await PostgresExamStore.withStore(url: url) { store in
                        _ = try await store.createExam(examId: "e\(node)", title: "A", actor: "admin", at: .now())
                    }
                }
            }
            try await group.waitForAll()
        }
        let titles = try await PostgresExamStore.withStore(url: url) { store in
            var titles: [String?] = []
            for node in 0..<4 { titles.append(try await store.exam("e\(node)")?.title) }
            return titles
        }
        #expect(titles == Array(repeating: "A", count: 4))
    }
}
