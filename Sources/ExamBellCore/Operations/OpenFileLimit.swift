import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Raises this process's open-file limit to its hard limit: a socket node holds one socket per
/// browser, and the bench one per simulated browser.
public func raiseOpenFileLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

/// This process's open-file limit (its soft limit), or 1,024 when it cannot be read.
public func openFileLimit() -> Int {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1_024 }
    return limit.rlim_cur > rlim_t(Int32.max) ? Int(Int32.max) : Int(limit.rlim_cur)
}

/// Makes the descriptors Dispatch creates on first use (its event loop, and one timer per
/// clock: uptime, monotonic, wall) while the process still has them to give.
///
/// Swift concurrency runs on Dispatch, which opens these lazily and traps (SIGILL) when it
/// cannot: a node whose open-file limit an attacker had reached died on the first timer of a
/// kind it had not used before, which could be an end's. Called at start, before any
/// listener opens. It is not enough alone: Dispatch's worker monitor also opens
/// `/proc/<tid>/stat` under load and traps without a descriptor, so the listeners never take
/// the last ones (`ConnectionLimits.maxOpen`: the open-file limit less a reserve).
public func primeDispatch() async {
    let moment = DispatchTimeInterval.milliseconds(1)
    try? await Task.sleep(for: .milliseconds(1))  // ContinuousClock
    try? await SuspendingClock().sleep(for: .milliseconds(1))
    await withCheckedContinuation { done in DispatchQueue.global().asyncAfter(deadline: .now() + moment) { done.resume() } }
    await withCheckedContinuation { done in DispatchQueue.global().asyncAfter(wallDeadline: .now() + moment) { done.resume() } }
}
