import ExamBellServer
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The crash tests' fault points, for the debug executable only: `EXAMBELL_TEST_FAULT=<point>`
/// SIGKILLs the process at that point (as a crash would), `<point>@<file>` does it once (only
/// while the file does not exist yet), and `slow-end` holds an end 1.5 s before its
/// transaction so a test can stop the node with the request in flight. Release builds ignore
/// the variable.
enum TestFaults {
    static func fromEnvironment() -> FaultPoints {
        #if DEBUG
        guard let text = ProcessInfo.processInfo.environment["EXAMBELL_TEST_FAULT"], !text.isEmpty else { return .none }
        let parts = text.split(separator: "@", maxSplits: 1).map(String.init)
        guard let chosen = FaultPoints.Point(rawValue: parts[0]) else { return .none }
        let marker = parts.count == 2 ? parts[1] : nil
        @Sendable func crash(_ point: FaultPoints.Point) {
            guard point == chosen else { return }
            if let marker {
                guard !FileManager.default.fileExists(atPath: marker) else { return }
                _ = FileManager.default.createFile(atPath: marker, contents: nil)
            }
            kill(getpid(), SIGKILL)
        }
        return FaultPoints(
            { point in
                guard point == chosen else { return }
                if point == .beforeEndCommit {
                    try? await Task.sleep(for: .milliseconds(1500))
                    return
                }
                crash(point)
            }, now: crash)
        #else
        return .none
        #endif
    }
}
