import Synchronization

/// One node's counts of calls to the DB and to Redis that failed (connection lost, timeout,
/// server error). The node makes one, hands it to the stores it opens, which record where
/// each backend's calls leave the process, and `/metrics` reads it as
/// `exambell_backend_errors_total{backend=…}`. Two nodes in one process keep their own.
public final class BackendFailures: Sendable {
    public enum Backend: String, Sendable, CaseIterable {
        case database
        case redis
    }

    private let counts = Mutex<[Backend: Int]>([:])

    public init() {}

    public func record(_ backend: Backend) {
        counts.withLock { $0[backend, default: 0] += 1 }
    }

    public func count(_ backend: Backend) -> Int {
        counts.withLock { $0[backend] ?? 0 }
    }
}
