import Dispatch
import ExamBellCore

#if canImport(Glibc)
import Glibc
#endif

// A fresh process for `DispatchPrimingTests`: `primed` calls `primeDispatch()` as the nodes do
// at start, `unprimed` does not; then it takes every descriptor it may open and runs a timer
// of each of Dispatch's clocks. Exits 0 when they all ran; Dispatch traps (SIGILL) otherwise.
func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

let primed = CommandLine.arguments.dropFirst().first == "primed"
if primed { await primeDispatch() }

var limit = rlimit(rlim_cur: 256, rlim_max: 256)
_ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
var taken = 0
while socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0) >= 0 { taken += 1 }
guard errno == EMFILE, taken > 0 else {
    say("the descriptors did not run out (errno \(errno))")
    exit(2)
}
say("holding every descriptor (\(taken) sockets)")
let moment = DispatchTimeInterval.milliseconds(5)
await withCheckedContinuation { done in DispatchQueue.global().asyncAfter(wallDeadline: .now() + moment) { done.resume() } }
await withCheckedContinuation { done in DispatchQueue.global().asyncAfter(deadline: .now() + moment) { done.resume() } }
try? await Task.sleep(for: .milliseconds(5))
try? await SuspendingClock().sleep(for: .milliseconds(5))
say("every timer ran")
exit(0)
