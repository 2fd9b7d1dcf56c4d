import ExamBellCore
import Synchronization

/// The in-process `queue:exam_end` of the embedded default, with the semantics of a Redis
/// Stream read through consumer groups: fan-out to every group, a pending list per group
/// until acknowledged, a new group starting at the end, and trimming to `maxLength`.
public final class MemoryQueue: ExamEndQueue {
    private struct Entry {
        var sequence: UInt64
        var payload: String
        var id: String { "\(sequence)-0" }
    }

    private struct Group {
        /// The last sequence delivered to the group.
        var lastDelivered: UInt64
        /// Delivered, not yet acknowledged: sequence → payload.
        var pending: [UInt64: String] = [:]
    }

    private struct State {
        var entries: [Entry] = []
        var nextSequence: UInt64 = 1
        var groups: [String: Group] = [:]
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
        /// Waits that ended (timeout or wake-up) before their continuation was stored.
        var finished: Set<UInt64> = []
    }

    private let state = Mutex(State())
    private let maxLength: Int
    public let stream: String

    /// A queue keeping at most about `maxLength` entries (like `XADD MAXLEN ~`).
    public init(stream: String = QueueStream.examEnd, maxLength: Int = 10_000) {
        self.stream = stream
        self.maxLength = max(1, maxLength)
    }

    @discardableResult
    public func publish(payload: String) async throws -> String {
        let (id, waiters) = state.withLock { state in
            let entry = Entry(sequence: state.nextSequence, payload: payload)
            state.nextSequence += 1
            state.entries.append(entry)
            if state.entries.count > maxLength {
                state.entries.removeFirst(state.entries.count - maxLength)
            }
            let waiters = Array(state.waiters.values)
            state.waiters.removeAll()
            return (entry.id, waiters)
        }
        for waiter in waiters { waiter.resume() }
        return id
    }

    public func createGroup(_ group: String) async throws {
        state.withLock { state in
            if state.groups[group] == nil {
                state.groups[group] = Group(lastDelivered: state.nextSequence - 1)
            }
        }
    }

    public func pending(group: String, limit: Int) async throws -> [QueueEntry] {
        state.withLock { state in
            guard let pending = state.groups[group]?.pending else { return [] }
            return pending.keys.sorted().prefix(limit).map {
                QueueEntry(id: Entry(sequence: $0, payload: "").id, payload: pending[$0]!)
            }
        }
    }

    public func read(group: String, limit: Int, timeout: Duration) async throws -> [QueueEntry] {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            try Task.checkCancellation()
            let (entries, seen) = try state.withLock { state in
                (try deliver(group: group, limit: limit, state: &state), state.nextSequence)
            }
            if !entries.isEmpty || ContinuousClock.now >= deadline { return entries }
            await waitForPublish(after: seen, until: deadline)
        }
    }

    public func acknowledge(group: String, ids: [String]) async throws {
        state.withLock { state in
            for id in ids {
                guard let sequence = Self.sequence(of: id) else { continue }
                state.groups[group]?.pending[sequence] = nil
            }
        }
    }

    private func deliver(group name: String, limit: Int, state: inout State) throws -> [QueueEntry] {
        guard var group = state.groups[name] else {
            throw StoreError.invalid(code: "no_group", message: "consumer group \(name) does not exist")
        }
        let after = group.lastDelivered
        let fresh = Array(state.entries.lazy.filter { $0.sequence > after }.prefix(limit))
        let delivered = fresh.map { QueueEntry(id: $0.id, payload: $0.payload) }
        for entry in fresh {
            group.pending[entry.sequence] = entry.payload
            group.lastDelivered = entry.sequence
        }
        state.groups[name] = group
        return delivered
    }

    /// Sleeps until a publish after sequence `seen`, or until `deadline`.
    private func waitForPublish(after seen: UInt64, until deadline: ContinuousClock.Instant) async {
        let key = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                await withCheckedContinuation { continuation in
                    let resumeNow = self.state.withLock { state in
                        if state.nextSequence != seen || state.finished.remove(key) != nil { return true }
                        state.waiters[key] = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
            tasks.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
                self.finishWaiting(key)
            }
            await tasks.next()
            tasks.cancelAll()
            self.finishWaiting(key)
            await tasks.waitForAll()
        }
        state.withLock { _ = $0.finished.remove(key) }
    }

    /// Wakes waiter `key`, or marks it finished so that it does not start waiting.
    private func finishWaiting(_ key: UInt64) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiters.removeValue(forKey: key) { return waiter }
            state.finished.insert(key)
            return nil
        }
        waiter?.resume()
    }

    private static func sequence(of id: String) -> UInt64? {
        id.split(separator: "-").first.flatMap { UInt64($0) }
    }
}
