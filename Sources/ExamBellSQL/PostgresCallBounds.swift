import ExamBellCore
import PostgresNIO
import Synchronization

/// The time bounds of DB calls (see `PostgresExecutor`).
public struct DatabaseTimeouts: Sendable {
    /// How long a caller waits for a pooled connection.
    public var connectionWait: Duration = .seconds(10)
    /// How long a statement waits for a row lock (PostgreSQL's `lock_timeout`).
    public var lockWait: Duration = .seconds(5)
    /// How long one statement may run (PostgreSQL's `statement_timeout`).
    public var statement: Duration = .seconds(10)
    /// How long a whole call may hold its connection before it is closed (long work, like
    /// migrations and bulk registration, says its own limit).
    public var call: Duration = .seconds(15)

    public init() {}

    /// The longest any call waits before it is answered.
    public var callBound: Duration { connectionWait + call + statement }
}

/// The call ran out of time before it could commit.
struct CallTimedOut: Error {}

/// The connection closed under a statement.
struct ConnectionLost: Error {}

/// One call's progress, shared by its work and its watchdog; each step is taken once.
///
/// The watchdog waits on the gate (`nextChange`) rather than on `Task.sleep`: a caller's
/// cancellation reaches both tasks of the call, and the watchdog must still close a
/// connection whose statements overrun, so it wakes at its deadline whether or not its task
/// was cancelled, or at once when the work moves on.
final class CallGate: Sendable {
    enum Phase { case waiting, running, committing, finished, timedOut }

    /// What the watchdog last saw: the phase, when the connection was leased, and a version
    /// to wait past.
    struct Snapshot {
        let phase: Phase
        let leasedAt: ContinuousClock.Instant?
        let version: Int
    }

    private struct State {
        var phase = Phase.waiting
        var connection: PostgresConnection?
        var leasedAt: ContinuousClock.Instant?
        var version = 0
        var waiter: CheckedContinuation<Void, Never>?
        var timer: Scheduled<Void>?

        mutating func advance(to phase: Phase) -> CheckedContinuation<Void, Never>? {
            self.phase = phase
            version += 1
            timer?.cancel()
            timer = nil
            defer { waiter = nil }
            return waiter
        }
    }

    private let state = Mutex(State())

    var snapshot: Snapshot {
        state.withLock { Snapshot(phase: $0.phase, leasedAt: $0.leasedAt, version: $0.version) }
    }

    /// The work got its connection; false when the call already timed out.
    func leased(_ connection: PostgresConnection) -> Bool {
        let (leased, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard state.phase == .waiting else { return (false, nil) }
            state.connection = connection
            state.leasedAt = .now
            return (true, state.advance(to: .running))
        }
        waiter?.resume()
        return leased
    }

    /// The work is about to send COMMIT; false when the call already timed out.
    func beginCommit() -> Bool {
        let (begun, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard state.phase == .running else { return (false, nil) }
            return (true, state.advance(to: .committing))
        }
        waiter?.resume()
        return begun
    }

    /// The work is done (answered or failed): the watchdog stops.
    func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.connection = nil
            return state.advance(to: state.phase == .timedOut ? .timedOut : .finished)
        }
        waiter?.resume()
    }

    /// Returns when the gate has moved past `version` or at `deadline`, whichever comes first,
    /// cancelled or not; the timer goes when the gate moves first.
    func nextChange(after version: Int, until deadline: ContinuousClock.Instant, on eventLoop: any EventLoop) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let waiting = state.withLock { state -> Bool in
                guard state.version == version else { return false }
                state.waiter = continuation
                return true
            }
            guard waiting else { return continuation.resume() }
            let delay = ContinuousClock.now.duration(to: deadline)
            let timer = eventLoop.scheduleTask(in: .nanoseconds(max(0, delay.nanoseconds))) { [self] in
                let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                    state.timer = nil
                    defer { state.waiter = nil }
                    return state.waiter
                }
                waiter?.resume()
            }
            let stale = state.withLock { state -> Bool in
                guard state.waiter != nil else { return true }
                state.timer = timer
                return false
            }
            if stale { timer.cancel() }
        }
    }

    /// No connection came in time: the call times out (false if it got one meanwhile).
    func timeOutWaiting() -> Bool { timeOut(from: .waiting).timedOut }

    /// The call overran while running its statements: returns the connection to close.
    func timeOutRunning() -> PostgresConnection? { timeOut(from: .running).connection }

    /// COMMIT got no answer in time: returns the connection to close.
    func timeOutCommitting() -> PostgresConnection? { timeOut(from: .committing).connection }

    private func timeOut(from phase: Phase) -> (timedOut: Bool, connection: PostgresConnection?) {
        state.withLock { state in
            guard state.phase == phase else { return (false, nil) }
            let connection = state.connection
            _ = state.advance(to: .timedOut)
            return (true, connection)
        }
    }
}
