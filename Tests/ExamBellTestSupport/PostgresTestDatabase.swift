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

    /// `url` with its database replaced by `name`.
    public static func url(_ url: String, database name: String) -> String {
        guard var components = URLComponents(string: url) else { return url }
        components.path = "/\(name)"
        return components.string ?? url
    }
}
