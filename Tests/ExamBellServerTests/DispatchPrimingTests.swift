import ExamBellTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 25: a node whose descriptors an attacker had taken died with signal 4 just after an
/// end arrived. Dispatch, under Swift concurrency, traps (SIGILL) when it needs a descriptor
/// and none is left: for a timer of a clock it had not used yet, and (not primable) when its
/// worker monitor reads /proc/<tid>/stat under load. So a node never lets its listeners take
/// the last descriptors (`ConnectionLimits`: the public port stops at the open-file limit less
/// 600 and sheds; the abuse suite holds it there), and `primeDispatch()` opens every timer
/// descriptor at start. Each case runs `exambell-dispatch-probe`, a fresh process.
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

    @Test("with no descriptor left, a process dies (SIGILL) on its first wall-clock timer: the hazard")
    func exhaustedTraps() async throws {
        let (status, log) = try await probe("exhausted")
        #expect(log.contains("holding every descriptor"), "\(log)")
        #expect(status == 128 + SIGILL, "\(log)")
    }

    @Test("primed as a node is at start, Dispatch holds a timer descriptor for each of its three clocks; unprimed, fewer")
    func primedHoldsEveryTimer() async throws {
        let primed = try await probe("primed")
        #expect(primed.status == 0)
        #expect(primed.log.contains("timer descriptors: 3"), "\(primed.log)")
        let unprimed = try await probe("unprimed")
        #expect(unprimed.status == 0)
        let count = unprimed.log.split(separator: ":").last.flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect(count.map { $0 < 3 } == true, "\(unprimed.log)")
    }
}
