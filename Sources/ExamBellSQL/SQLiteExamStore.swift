import ExamBellCore
import Logging

/// The embedded DB: `SQLExamStore` on a SQLite file, migrated and ready.
public enum SQLiteExamStore {
    /// Opens (creating and migrating when needed) the SQLite database at `path`.
    public static func open(path: String, logger: Logger = Logger(label: "exambell.sqlite")) async throws -> SQLExamStore {
        let store = SQLExamStore(executor: try await SQLiteExecutor.open(path: path, logger: logger))
        try await store.migrate()
        return store
    }
}
