import ExamBellSQL
import Foundation

/// A fresh, empty PostgreSQL database for one test, in the cluster `scripts/test` started
/// (`EXAMBELL_TEST_POSTGRES_URL`). When the variable is missing the test fails, never skips.
///
/// Every test of a run creates its database one after another: when ~100 tests start at once
/// on two cores, a `CREATE DATABASE` per test at once made the cluster hand out connections
/// late enough for the product's 10 s connection wait to run out in the tests' first burst.
/// The maintenance connection itself waits longer (it serves the test harness, not the
/// product).
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

    /// Runs `body` with a migrated store on a database of its own in the test cluster; its
    /// pool stops when `body` returns.
    public static func withFreshStore<R: Sendable>(
        timeouts: DatabaseTimeouts = DatabaseTimeouts(), _ body: (SQLExamStore) async throws -> R
    ) async throws -> R {
        try await PostgresExamStore.withStore(url: try await freshDatabaseURL(), timeouts: timeouts, body)
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

    /// Creates the test process's databases one at a time, in the order they were asked for,
    /// each through a connection of its own that closes with it.
    actor Maintenance {
        static let shared = Maintenance()
        private var tail: Task<Void, Never>?

        func createDatabase(_ name: String, server: String) async throws {
            let previous = tail
            let work = Task {
                await previous?.value
                // The harness's bounds, not the product's: it waits longer.
                var timeouts = DatabaseTimeouts()
                timeouts.connectionWait = .seconds(60)
                timeouts.statement = .seconds(60)
                timeouts.call = .seconds(60)
                try await PostgresExamStore.withStore(url: server, timeouts: timeouts, migrated: false) { store in
                    try await store.execute("CREATE DATABASE \(name)")
                }
            }
            tail = Task { _ = try? await work.value }
            try await work.value
        }
    }
}
