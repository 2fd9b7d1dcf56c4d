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
    let before = timerDescriptors()
    // A timer of each clock, far off (never already due, so each is armed with a descriptor of
    // its own), held until Dispatch holds those descriptors (at most 2 s), then cancelled:
    // a descriptor, once made, stays.
    let far = DispatchTimeInterval.seconds(3600)
    let wall = DispatchSource.makeTimerSource()
    wall.schedule(wallDeadline: .now() + far)
    wall.setEventHandler {}
    wall.activate()
    let uptime = DispatchSource.makeTimerSource()
    uptime.schedule(deadline: .now() + far)
    uptime.setEventHandler {}
    uptime.activate()
    let continuous = Task { try? await Task.sleep(for: .seconds(3600)) }
    let suspending = Task { try? await SuspendingClock().sleep(for: .seconds(3600)) }
    let deadline = ContinuousClock.now + .seconds(2)
    // Dispatch has three clocks; some may have their descriptor already (called first thing,
    // before NIO makes its own timer descriptors, the count is Dispatch's alone).
    while timerDescriptors() < max(3, before), ContinuousClock.now < deadline {
        try? await Task.sleep(for: .milliseconds(5))
    }
    wall.cancel()
    uptime.cancel()
    continuous.cancel()
    suspending.cancel()
}

/// How many timer descriptors (`anon_inode:[timerfd]`) this process holds (Linux; 0 elsewhere).
public func timerDescriptors() -> Int {
    #if os(Linux)
    guard let folder = opendir("/proc/self/fd") else { return 0 }
    defer { closedir(folder) }
    var count = 0
    var target = [CChar](repeating: 0, count: 64)
    while let entry = readdir(folder) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard name.first?.isNumber == true else { continue }
        let length = readlink("/proc/self/fd/\(name)", &target, target.count - 1)
        guard length > 0 else { continue }
        if String(decoding: target.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self) == "anon_inode:[timerfd]" { count += 1 }
    }
    return count
    #else
    return 0
    #endif
}
