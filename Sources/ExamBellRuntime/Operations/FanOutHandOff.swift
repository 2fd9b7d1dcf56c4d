import ExamBellCore
import Synchronization

/// On a node that runs both roles (embedded `serve`), the end's own bookkeeping (the candidates'
/// ids read, their keys, the outbox row and the 10,000-row update) waits until this node's
/// socket hub has written the end's frame to every browser it holds, so that it does not take
/// the fan-out's cores. The web side `expect`s an end before it publishes it and `wait`s after;
/// the hub's broadcast says `written` once every event loop wrote its last browser's frame.
/// Only expected ends are remembered, and only until their wait returns: nothing grows with
/// the ends a node runs, and a `written` nobody expects costs a lookup.
public final class FanOutHandOff: Sendable {
    private enum Waiter {
        case expected
        case written
        case waiting(CheckedContinuation<Bool, Never>)
    }

    private let waiters = Mutex<[String: Waiter]>([:])

    public init() {}

    /// The end's key: its exam and time (`examId@endDatetime`, the end id of the logs).
    public static func key(examId: String, at time: Timestamp) -> String {
        "\(examId)@\(time.iso8601)"
    }

    /// Called before the end is published: its hand-off is remembered from now on.
    public func expect(_ key: String) {
        waiters.withLock { waiters in
            if waiters[key] == nil { waiters[key] = .expected }
        }
    }

    /// The hub wrote the end's frame to every browser it held.
    public func written(_ key: String) {
        let continuation: CheckedContinuation<Bool, Never>? = waiters.withLock { waiters in
            switch waiters[key] {
            case .expected:
                waiters[key] = .written
                return nil
            case .waiting(let continuation):
                waiters[key] = nil
                return continuation
            case .written, nil:
                return nil
            }
        }
        continuation?.resume(returning: true)
    }

    /// Waits until the expected end was written, at most `bound` (a node whose consumer is
    /// behind or whose queue is away does not hold the end's answer longer than that); true
    /// when it was. Returns at once for an end not expected. Cancellation ends the wait.
    public func wait(_ key: String, atMost bound: Duration) async -> Bool {
        await withTaskGroup(of: Bool?.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let answer: Bool? = self.waiters.withLock { waiters in
                        switch waiters[key] {
                        case .expected:
                            waiters[key] = .waiting(continuation)
                            return nil
                        case .written:
                            waiters[key] = nil
                            return true
                        case .waiting, nil:
                            return false
                        }
                    }
                    if let answer { continuation.resume(returning: answer) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: bound)
                self.forget(key)
                return nil
            }
            var written = false
            for await result in group {
                if let result {
                    written = result
                    group.cancelAll()
                }
            }
            return written
        }
    }

    /// The end is not waited for (its publish failed; the wait's bound passed or it was
    /// cancelled): a waiter is answered false, and the end forgotten.
    public func forget(_ key: String) {
        let continuation: CheckedContinuation<Bool, Never>? = waiters.withLock { waiters in
            guard case .waiting(let continuation) = waiters[key] else {
                waiters[key] = nil
                return nil
            }
            waiters[key] = nil
            return continuation
        }
        continuation?.resume(returning: false)
    }

    /// Ends remembered now (for tests: zero once every wait returned).
    public var remembered: Int { waiters.withLock { $0.count } }
}

/// Calls its action when counted down to zero (at once when made with zero).
public final class Countdown: Sendable {
    private let left: Atomic<Int>
    private let action: @Sendable () -> Void

    public init(_ count: Int, then action: @escaping @Sendable () -> Void) {
        left = Atomic(count)
        self.action = action
        if count == 0 { action() }
    }

    public func countDown() {
        if left.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { action() }
    }
}
