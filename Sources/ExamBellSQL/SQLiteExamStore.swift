import ExamBellCore
import Foundation
import Logging

/// The embedded DB: `SQLExamStore` on a SQLite file, migrated and ready.
public enum SQLiteExamStore {
    /// Opens (creating and migrating when needed) the SQLite database at `path`.
    public static func open(
        path: String, failures: BackendFailures = BackendFailures(), logger: Logger = Logger(label: "exambell.sqlite")
    ) async throws -> SQLExamStore {
        try ownerOnly(path)
        let store = SQLExamStore(executor: try await SQLiteExecutor.open(path: path, logger: logger), failures: failures)
        try await store.migrate()
        return store
    }

    /// The file (answers, password and token hashes) and its journal files are readable by
    /// their owner only: created 0600 before SQLite opens it (SQLite gives its `-wal` and
    /// `-shm` the file's mode), and set so when an older node made them 0644.
    static func ownerOnly(_ path: String) throws {
        guard path != ":memory:", !path.hasPrefix("file:") else { return }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let fd = Foundation.open(path, O_RDONLY | O_CREAT, 0o600)
        guard fd >= 0 else {
            throw StoreError.unavailable("Cannot open \(path): \(String(cString: strerror(errno))).")
        }
        fchmod(fd, 0o600)
        close(fd)
        for suffix in ["-wal", "-shm", "-journal"] { chmod(path + suffix, 0o600) }
    }
}
