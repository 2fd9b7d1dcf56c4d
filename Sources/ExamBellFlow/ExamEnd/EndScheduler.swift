import ExamBellCore
import Logging
import ServiceLifecycle

/// Ends exams at their planned end (`scheduledEndDatetime`), through the same path as a
/// manual end (`EndExamService`) with actor `scheduler`.
///
/// Every web node runs one; the DB's conditional update makes exactly one of them end an
/// exam, the others get `already_completed`: one transition, one queue entry, one audit row.
/// Candidates whose own planned end passed (an accommodation, or everyone's end while an
/// accommodated candidate still works) end alone the same way (`ExamDayService`).
package struct EndScheduler: Service {
    package let endService: EndExamService
    package let examDay: ExamDayService
    package let store: any ExamPlanStore & ExamDayStore
    package let interval: Duration
    package let logger: Logger

    package init(endService: EndExamService, examDay: ExamDayService, store: any ExamPlanStore & ExamDayStore, interval: Duration, logger: Logger) {
        self.endService = endService
        self.examDay = examDay
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    /// One pass: ends every exam that is due; returns how many this node ended.
    @discardableResult
    package func endDue() async -> Int {
        let due: [String]
        do {
            due = try await store.examsDueToEnd(at: .now())
        } catch {
            logger.warning("scheduler could not read due exams", metadata: ["error": "\(error)"])
            return 0
        }
        var ended = 0
        for examId in due {
            do {
                let outcome = try await endService.end(examId: examId, actor: "scheduler", reason: "scheduled end")
                if outcome.ended {
                    ended += 1
                    logger.info("exam ended at its planned time", metadata: ["examId": "\(examId)"])
                }
            } catch {
                logger.warning("scheduled end failed; retrying next pass", metadata: ["examId": "\(examId)", "error": "\(error)"])
            }
        }
        await endDueCandidates()
        return ended
    }

    /// Ends alone every running candidate whose own planned end passed, one event per exam.
    private func endDueCandidates() async {
        let due: [String: [String]]
        do {
            due = try await store.candidatesDueToEnd(at: .now())
        } catch {
            logger.warning("scheduler could not read due candidates", metadata: ["error": "\(error)"])
            return
        }
        for (examId, ids) in due.sorted(by: { $0.key < $1.key }) {
            do {
                _ = try await examDay.endCandidates(examId: examId, candidateIds: ids, actor: "scheduler", reason: "planned end", endedBy: .ownTime)
            } catch {
                logger.warning("scheduled candidate end failed; retrying next pass", metadata: ["examId": "\(examId)", "error": "\(error)"])
            }
        }
    }

    package func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await endDue()
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
