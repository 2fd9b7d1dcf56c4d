import ExamBellRuntime
import ExamBellServer
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The crash tests' fault points, for the debug executable only: `EXAMBELL_TEST_FAULT=<point>`
/// SIGKILLs the process at that point (as a crash would), `<point>@<file>` does it once (only
/// while the file does not exist yet; a point reached on an event loop holds the loop 0.3 s
/// first), and `slow-end` holds an end 1.5 s before its transaction so a test can stop the
/// node with the request in flight. Release builds ignore the variable.
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
            },
            now: { point in
                // Reached on an event loop that just wrote frames: hold the loop (nothing more
                // is written) while the kernel puts those on the wire, which under CPU load it
                // does later (loopback delivery runs in ksoftirqd), then die.
                guard point == chosen, marker.map({ !FileManager.default.fileExists(atPath: $0) }) ?? true else { return }
                usleep(300_000)
                crash(point)
            })
        #else
        return .none
        #endif
    }
}
