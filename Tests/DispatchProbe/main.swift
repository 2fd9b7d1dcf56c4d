import Dispatch
import ExamBellCore

#if canImport(Glibc)
import Glibc
#endif

// A fresh process for `DispatchPrimingTests`.
// - `unprimed` / `primed`: calls `primeDispatch()` as the nodes do at start (or not), then
//   prints how many timer descriptors Dispatch holds (`anon_inode:[timerfd]` in /proc/self/fd).
// - `exhausted`: takes every descriptor it may open, then starts a wall-clock timer; Dispatch
//   traps (SIGILL) when it cannot open the timer's descriptor.
func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

let mode = CommandLine.arguments.dropFirst().first ?? "unprimed"
let moment = DispatchTimeInterval.milliseconds(5)
switch mode {
case "exhausted":
    var limit = rlimit(rlim_cur: 256, rlim_max: 256)
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    var taken = 0
    while socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0) >= 0 { taken += 1 }
    guard errno == EMFILE, taken > 0 else {
        say("the descriptors did not run out (errno \(errno))")
        exit(2)
    }
    say("holding every descriptor (\(taken) sockets)")
    await withCheckedContinuation { done in DispatchQueue.global().asyncAfter(wallDeadline: .now() + moment) { done.resume() } }
    say("the timer ran")
default:
    if mode == "primed" { await primeDispatch() }
    say("timer descriptors: \(timerDescriptors())")
}
exit(0)
