import ExamBellCore
import Logging
import ServiceLifecycle

/// Links new audit rows into their exams' hash chains every `interval` (web nodes). Rows are
/// written unlinked so that no save or end waits on another's append; this pass gives them
/// their `seq`, `prevHash` and `hash` a moment later, and an export links what is left first.
package struct AuditChainer: Service {
    package let store: any AuditStore
    package let interval: Duration
    package let logger: Logger

    package init(store: any AuditStore, interval: Duration, logger: Logger) {
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    package func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await store.chainAudit(examId: nil)
            } catch {
                logger.warning("audit rows could not be linked into their chain; next pass retries", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
