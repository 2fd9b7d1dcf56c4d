import ExamBellSQL
import Foundation

/// A fresh, empty PostgreSQL database for one test, in the cluster `scripts/test` started
/// (`EXAMBELL_TEST_POSTGRES_URL`). When the variable is missing the test fails, never skips.
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
        let admin = try await PostgresExamStore.openUnmigrated(url: server)
        let name = freshName()
        try await admin.execute("CREATE DATABASE \(name)")
        try await admin.shutdown()
        return url(server, database: name)
    }

    /// `url` with its database replaced by `name`.
    public static func url(_ url: String, database name: String) -> String {
        guard var components = URLComponents(string: url) else { return url }
        components.path = "/\(name)"
        return components.string ?? url
    }
}
