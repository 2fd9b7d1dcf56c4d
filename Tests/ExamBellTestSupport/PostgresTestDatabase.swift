import ExamBellSQL
import Foundation

/// A fresh, empty PostgreSQL database for one test, in the cluster `scripts/test` started
/// (`EXAMBELL_TEST_POSTGRES_URL`). When the variable is missing the test fails, never skips.
///
/// Every test of a run creates its database through one maintenance connection, one after
/// another: when ~100 tests start at once on two cores, a pool and a `CREATE DATABASE` per test
/// made the cluster hand out connections late enough for the product's 10 s connection wait
/// to run out in the tests' first burst. The maintenance pool itself waits longer (it serves
/// the test harness, not the product).
public enum PostgresTestDatabase {
    /// The URL of the test cluster's maintenance database.
    public static func serverURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["EXAMBELL_TEST_POSTGRES_URL"], !url.isEmpty else {
            throw TestServerError("EXAMBELL_TEST_POSTGRES_URL is not set: run the tests with scripts/test, which starts PostgreSQL")
        }
        return url
    }

    /// A name for a new database, unique to this test.
    public static func freshName() -> String {
        "exambell_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
    }

    /// A migrated store on a database of its own in the test cluster.
    public static func freshStore() async throws -> SQLExamStore {
        try await PostgresExamStore.open(url: try await freshDatabaseURL())
    }

    /// The URL of a new, empty database in the test cluster (for several nodes to share).
    public static func freshDatabaseURL() async throws -> String {
        let server = try serverURL()
        let name = freshName()
        try await Maintenance.shared.createDatabase(name, server: server)
        return url(server, database: name)
    }

    /// `url` with its database replaced by `name`.
    public static func url(_ url: String, database name: String) -> String {
        guard var components = URLComponents(string: url) else { return url }
        components.path = "/\(name)"
        return components.string ?? url
    }

    /// The one maintenance connection of the test process; creates databases one at a time,
    /// in the order they were asked for.
    actor Maintenance {
        static let shared = Maintenance()
        private var store: Task<SQLExamStore, any Error>?
        private var tail: Task<Void, Never>?

        func createDatabase(_ name: String, server: String) async throws {
            let store = self.store ?? Task { try await Self.open(server) }
            self.store = store
            let previous = tail
            let work = Task {
                await previous?.value
                try await store.value.execute("CREATE DATABASE \(name)")
            }
            tail = Task { _ = try? await work.value }
            do {
                try await work.value
            } catch {
                // A maintenance pool that could not open is opened again by the next test.
                if case .failure = await store.result { self.store = nil }
                throw error
            }
        }

        private static func open(_ server: String) async throws -> SQLExamStore {
            var timeouts = DatabaseTimeouts()
            timeouts.connectionWait = .seconds(60)
            timeouts.statement = .seconds(60)
            timeouts.call = .seconds(60)
            return try await PostgresExamStore.openUnmigrated(url: server, timeouts: timeouts)
        }
    }
}
