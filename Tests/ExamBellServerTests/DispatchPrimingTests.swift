import ExamBellTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 25: a node whose descriptors an attacker had taken died with signal 4 just after an
/// end arrived. Dispatch, under Swift concurrency, opens a descriptor for each of its timer
/// clocks on first use and traps when it cannot; the nodes call `primeDispatch()` at start.
/// Each case runs `exambell-dispatch-probe`, a fresh process that takes every descriptor it
/// may open and then runs a timer of each clock.
@Suite("Dispatch priming", .timeLimit(.minutes(2)))
struct DispatchPrimingTests {
    func probe(_ mode: String) async throws -> (status: Int32?, log: String) {
        let logPath = FileManager.default.temporaryDirectory.appendingPathComponent("exambell-probe-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: logPath) }
        let process = TestProcess(arguments: [try TestProcess.builtBinary("exambell-dispatch-probe"), mode], environment: [:], logPath: logPath)
        try process.start()
        let status = await process.exitStatus(within: .seconds(30))
        return (status, process.log)
    }

    @Test("unprimed, a process with no descriptor left dies (SIGILL) on its first wall-clock timer: the hazard")
    func unprimedTraps() async throws {
        let (status, log) = try await probe("unprimed")
        #expect(log.contains("holding every descriptor"), "\(log)")
        #expect(status == 128 + SIGILL, "\(log)")
    }

    @Test("primed as a node is at start, timers of every clock run with no descriptor left")
    func primedRuns() async throws {
        let (status, log) = try await probe("primed")
        #expect(status == 0, "\(log)")
        #expect(log.contains("every timer ran"), "\(log)")
    }
}
