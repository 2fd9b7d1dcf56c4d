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
final class CallGate: Sendable {
    enum Phase { case waiting, running, committing, finished, timedOut }
    private struct State {
        var phase = Phase.waiting
        var connection: PostgresConnection?
        var onFinish: [@Sendable () -> Void] = []
        var onLeased: (@Sendable () -> Void)?
    }

    private let state = Mutex(State())

    /// The work got its connection; false when the call already timed out.
    func leased(_ connection: PostgresConnection) -> Bool {
        let (leased, callback) = state.withLock { state -> (Bool, (@Sendable () -> Void)?) in
            guard state.phase == .waiting else { return (false, nil) }
            state.phase = .running
            state.connection = connection
            defer { state.onLeased = nil }
            return (true, state.onLeased)
        }
        callback?()
        return leased
    }

    /// Calls `callback` once the work has its connection or is done (at once if it is).
    func onLeasedOrFinished(_ callback: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            guard state.phase == .waiting else { return true }
            state.onLeased = callback
            return false
        }
        if now { callback() }
    }

    /// The work is about to send COMMIT; false when the call already timed out.
    func beginCommit() -> Bool {
        state.withLock { state in
            guard state.phase == .running else { return false }
            state.phase = .committing
            return true
        }
    }

    func finish() {
        let callbacks = state.withLock { state -> [@Sendable () -> Void] in
            if state.phase != .timedOut { state.phase = .finished }
            state.connection = nil
            defer {
                state.onFinish = []
                state.onLeased = nil
            }
            return state.onFinish + (state.onLeased.map { [$0] } ?? [])
        }
        for callback in callbacks { callback() }
    }

    /// Calls `callback` when the work finishes.
    func onFinish(_ callback: @escaping @Sendable () -> Void) {
        state.withLock { $0.onFinish.append(callback) }
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
            state.phase = .timedOut
            return (true, state.connection)
        }
    }
}
