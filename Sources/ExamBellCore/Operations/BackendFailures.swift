import Synchronization

/// Process-wide counts of calls to the DB and to Redis that failed (connection lost,
/// timeout, server error), recorded where each backend's calls leave the process and read
/// by `/metrics` as `exambell_backend_errors_total{backend=…}`.
public enum BackendFailures {
    public enum Backend: String, Sendable, CaseIterable {
        case database
        case redis
    }

    private static let counts = Mutex<[Backend: Int]>([:])

    public static func record(_ backend: Backend) {
        counts.withLock { $0[backend, default: 0] += 1 }
    }

    public static func count(_ backend: Backend) -> Int {
        counts.withLock { $0[backend] ?? 0 }
    }
}
