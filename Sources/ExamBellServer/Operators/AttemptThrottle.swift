import ExamBellCore
import Foundation
import Synchronization

/// Counts failed attempts (logins, wrong tokens) per key and refuses a key that failed
/// `limit` times within `window` until the window since its oldest counted failure passes.
///
/// Per node and in memory: behind a load balancer each node throttles on its own, which
/// still caps guesses at `limit × nodes` per window. At most `maxKeys` keys are kept; the
/// stalest go first, so a flood of addresses cannot grow it without bound.
final class AttemptThrottle: Sendable {
    let limit: Int
    let window: Duration
    let maxKeys: Int
    private let failures = Mutex<[String: [ContinuousClock.Instant]]>([:])

    init(limit: Int, window: Duration, maxKeys: Int = 100_000) {
        self.limit = limit
        self.window = window
        self.maxKeys = maxKeys
    }

    /// Throws 429 `too_many_attempts` while `key` is refused.
    func check(_ key: String, what: String) throws(ExamBellError) {
        let now = ContinuousClock.now
        let wait: Duration? = failures.withLock { table in
            let recent = (table[key] ?? []).filter { now - $0 < window }
            table[key] = recent.isEmpty ? nil : recent
            guard recent.count >= limit, let oldest = recent.first else { return nil }
            return window - (now - oldest)
        }
        if let wait {
            let seconds = max(1, Int(wait.components.seconds) + 1)
            throw ExamBellError(
                status: 429, code: "too_many_attempts", message: "Too many failed \(what); try again in \(seconds) s."
            )
        }
    }

    /// Counts one failure of `key`.
    func fail(_ key: String) {
        let now = ContinuousClock.now
        failures.withLock { table in
            if table[key] == nil, table.count >= maxKeys {
                // Forget the keys whose last failure is oldest.
                let stalest = table.sorted { ($0.value.last ?? now) < ($1.value.last ?? now) }.prefix(max(1, maxKeys / 10))
                for (stale, _) in stalest { table[stale] = nil }
            }
            var recent = (table[key] ?? []).filter { now - $0 < window }
            recent.append(now)
            table[key] = Array(recent.suffix(limit))
        }
    }

    /// Forgets `key`'s failures (a name that logged in).
    func reset(_ key: String) {
        _ = failures.withLock { $0.removeValue(forKey: key) }
    }
}

/// A fixed number of places, taken and given back (a bounded line of work).
public final class Slots: Sendable {
    public let limit: Int
    private let taken = Atomic(0)

    public init(limit: Int) {
        self.limit = limit
    }

    /// Takes a place; false when all `limit` are taken.
    public func take() -> Bool {
        var current = taken.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = taken.compareExchange(expected: current, desired: current + 1, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            current = original
        }
        return false
    }

    /// Gives a taken place back.
    public func give() { taken.subtract(1, ordering: .acquiringAndReleasing) }

    public var inUse: Int { taken.load(ordering: .relaxed) }
}
