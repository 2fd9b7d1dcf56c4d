import ExamBellCore
import Foundation
import Synchronization

/// Counts failed attempts (logins, wrong tokens) per key and refuses a key that failed
/// `limit` times within `window` until the window since its oldest counted failure passes.
///
/// An attempt is counted as failed before its check (`reserve`) and forgiven when it succeeds,
/// so attempts sent at once cannot all be checked against the same count: of 32 wrong
/// passwords sent together for one name, `limit` are checked and the rest refused.
///
/// Per node and in memory: behind a load balancer each node throttles on its own, which
/// still caps guesses at `limit × nodes` per window. At most `maxKeys` keys are kept; the
/// stalest go first, so a flood of addresses cannot grow it without bound.
final package class AttemptThrottle: Sendable {
    package let limit: Int
    package let window: Duration
    package let maxKeys: Int
    private let failures = Mutex<[String: [ContinuousClock.Instant]]>([:])

    package init(limit: Int, window: Duration, maxKeys: Int = 100_000) {
        self.limit = limit
        self.window = window
        self.maxKeys = maxKeys
    }

    convenience package init(_ limit: AttemptLimit) {
        self.init(limit: limit.limit, window: limit.window)
    }

    /// Counts one attempt of `key` as failed, unless `key` is refused: then throws 429
    /// `budget_exceeded` (naming `what`) and counts nothing. `forgive` takes it back.
    package func reserve(_ key: String, what: String) throws(ExamBellError) {
        if let wait = record(key, onlyIfRoom: true) {
            let seconds = max(1, Int(wait.components.seconds) + 1)
            throw ExamBellError(
                status: 429, code: "budget_exceeded",
                message: "Too many failed \(what) (at most \(limit) in \(Int(window.components.seconds)) s); try again in \(seconds) s."
            )
        }
    }

    /// Whether `key` has failed `limit` times within the window.
    package func isOver(_ key: String) -> Bool {
        let now = ContinuousClock.now
        return failures.withLock { table in (table[key] ?? []).filter { now - $0 < window }.count >= limit }
    }

    /// Counts one failure of `key` (whatever its count).
    package func fail(_ key: String) {
        _ = record(key, onlyIfRoom: false)
    }

    /// Takes back the latest failure counted for `key` (its attempt succeeded).
    package func forgive(_ key: String) {
        failures.withLock { table in
            guard var recent = table[key], !recent.isEmpty else { return }
            recent.removeLast()
            table[key] = recent.isEmpty ? nil : recent
        }
    }

    /// Forgets `key`'s failures (a name that logged in).
    package func reset(_ key: String) {
        _ = failures.withLock { $0.removeValue(forKey: key) }
    }

    /// Adds a failure of `key` now; with `onlyIfRoom`, not when `key` has `limit` already,
    /// and then returns how long until it has room again.
    private func record(_ key: String, onlyIfRoom: Bool) -> Duration? {
        let now = ContinuousClock.now
        return failures.withLock { table -> Duration? in
            var recent = (table[key] ?? []).filter { now - $0 < window }
            if onlyIfRoom, recent.count >= limit, let oldest = recent.first {
                table[key] = recent
                return window - (now - oldest)
            }
            if table[key] == nil, table.count >= maxKeys {
                // Forget the keys whose last failure is oldest.
                let stalest = table.sorted { ($0.value.last ?? now) < ($1.value.last ?? now) }.prefix(max(1, maxKeys / 10))
                for (stale, _) in stalest { table[stale] = nil }
            }
            recent.append(now)
            table[key] = Array(recent.suffix(limit))
            return nil
        }
    }
}

/// `limit` failures within `window`.
public struct AttemptLimit: Sendable, Hashable {
    public var limit: Int
    public var window: Duration

    public init(_ limit: Int, per window: Duration) {
        self.limit = limit
        self.window = window
    }
}

/// A fixed number of places, taken and given back (a bounded line of work), shared fairly:
/// one key (a client address) holds at most `perKey` of them, so one flooding address cannot
/// take the whole line from everyone else.
public final class Slots: Sendable {
    public let limit: Int
    public let perKey: Int
    private let taken = Mutex<(total: Int, byKey: [String: Int])>((0, [:]))

    public init(limit: Int, perKey: Int? = nil) {
        self.limit = limit
        self.perKey = perKey ?? max(1, limit / 4)
    }

    /// Takes a place for `key`; false when all `limit` are taken, or `key` holds `perKey`.
    public func take(_ key: String = "") -> Bool {
        taken.withLock { taken in
            guard taken.total < limit, taken.byKey[key, default: 0] < perKey else { return false }
            taken.total += 1
            taken.byKey[key, default: 0] += 1
            return true
        }
    }

    /// Gives back a place `key` took.
    public func give(_ key: String = "") {
        taken.withLock { taken in
            taken.total -= 1
            taken.byKey.countDown(key)
        }
    }

    public var inUse: Int { taken.withLock { $0.total } }
}
