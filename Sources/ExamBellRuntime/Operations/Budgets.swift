import ExamBellCore
import Foundation
import Synchronization

/// What each principal (an address, a session token, a candidate, a proctor, an operator, a
/// login name) may spend, in one place with its default; the option that sets each is named
/// beside it, and the README's "Budgets" table lists them all. Past a budget the answer is
/// `429 budget_exceeded` (or `413`/`431` for sizes) and nothing is stored.
///
/// Connections are budgeted per listener by `ConnectionLimits` (head, body, idle; per
/// address and in all), sockets per session and address by the socket node
/// (`ExamBellConfiguration.maxConnectionsPerSession`, `maxConnectionsPerAddress`).
public struct Budgets: Sendable {
    /// `PUT /api/answers` per candidate (`--answer-saves-per-minute`, 120): a page saves on
    /// each change, debounced, so 20 at once and then 2 a second is far above a real one.
    public var answerSaves = Rate(burst: 20, perMinute: 120)
    /// The pages' other calls per session token (`--page-calls-per-minute`, 240): a
    /// reconnect makes three (session, ticket, announcements).
    public var pageCalls = Rate(burst: 60, perMinute: 240)
    /// Bytes of late submissions kept per candidate (`--late-bytes-per-candidate`, 256 KiB):
    /// the latest answer of each item after the grace window, never every attempt.
    public var lateBytesPerCandidate = 256 * 1024
    /// Announcements per sender, an operator or a proctor (`--announcements-per-minute`, 3,
    /// 5 at once).
    public var announcements = Rate(burst: 5, perMinute: 3)
    /// Time changes and single candidates' ends per operator (`--changes-per-minute`, 30).
    public var changes = Rate(burst: 30, perMinute: 30)
    /// Webhook registrations, removals and resends per operator (each resend is an outgoing
    /// request): 20 at once, then 20 a minute.
    public var webhookCalls = Rate(burst: 20, perMinute: 20)
    /// Webhook endpoints of a deployment (each is a fan-out of every event it listens for).
    public var webhookEndpoints = 50
    /// Receipt key rotations per operator: 3 at once, then 1 an hour (a rotation answers a
    /// leaked key; every key stays published for good).
    public var keyRotations = Rate(burst: 3, per: .seconds(3600))
    /// Receipt keys a deployment keeps, retired ones included (100).
    public var receiptKeys = 100
    /// Failed logins one address may make for one name within 15 minutes before that pair is
    /// refused (429) for the rest of them (`--login-failures-per-name`, 5).
    public var loginFailuresPerNameAndAddress = AttemptLimit(5, per: .seconds(15 * 60))
    /// Failed logins one address may make within 15 minutes, whatever the names (30).
    public var loginFailuresPerAddress = AttemptLimit(30, per: .seconds(15 * 60))
    /// Failed logins for one name from everywhere within 15 minutes after which each login
    /// for it waits `loginSlowdown` first (20): never refused, so an attacker may slow an
    /// operator's login, not stop it.
    public var loginFailuresPerName = AttemptLimit(20, per: .seconds(15 * 60))
    /// How long a login of a name past `loginFailuresPerName` waits before it is checked.
    public var loginSlowdown: Duration = .seconds(1)
    /// Rows a list call returns at most (`GET /api/exams`, late submissions;
    /// `--max-list-rows`, 500); `?limit=` asks for fewer, `?after=` pages on.
    public var maxListRows = 500
    /// What a list call returns when it does not say (100).
    public var defaultListRows = 100
    /// Announcements a page fetches (the latest, with the count of all): 20.
    public var latestAnnouncements = 20

    public init() {}
}

/// `burst` at once, then one more each `per`: a token bucket.
public struct Rate: Sendable, Hashable {
    public var burst: Int
    public var per: Duration

    public init(burst: Int, per: Duration) {
        self.burst = burst
        self.per = per
    }

    /// `burst` at once, then `perMinute` a minute.
    public init(burst: Int, perMinute: Int) {
        self.init(burst: burst, per: .milliseconds(60_000 / max(1, perMinute)))
    }

    /// Like `20, then 1 per 0.5 s`.
    public var summary: String { "\(burst), then 1 per \(per.inSeconds) s" }
}

/// One `Rate` per principal, spent atomically: concurrent requests of one principal cannot
/// overdraw it (each takes its token under the lock before its work).
final package class RateBudget: Sendable {
    package struct Bucket {
        package var tokens: Double
        package var at: ContinuousClock.Instant
    }

    /// What the budget is of, for the error message ("announcements per sender").
    package let name: String
    package let rate: Rate
    /// The buckets, and the size at which full ones are next dropped.
    private let table = Mutex<(buckets: [String: Bucket], pruneAt: Int)>(([:], 4_096))

    package init(_ name: String, _ rate: Rate) {
        self.name = name
        self.rate = rate
    }

    /// Takes one for `key` now; false when its bucket is empty.
    package func spend(_ key: String, now: ContinuousClock.Instant = .now) -> Bool {
        table.withLock { table in
            var bucket = refilled(table.buckets[key], now: now)
            let spent = bucket.tokens >= 1
            if spent { bucket.tokens -= 1 }
            table.buckets[key] = bucket
            // Full buckets say nothing: drop them when the table has doubled, so it holds only
            // principals that spent lately, at a cost spread over the spends that grew it.
            if table.buckets.count >= table.pruneAt {
                table.buckets = table.buckets.filter { refilled($0.value, now: now).tokens < Double(rate.burst) }
                table.pruneAt = max(4_096, 2 * table.buckets.count)
            }
            return spent
        }
    }

    /// Takes one for `key`, or throws `429 budget_exceeded` naming the budget.
    package func require(_ key: String) throws {
        guard spend(key) else { throw exceeded() }
    }

    /// The refusal of this budget.
    package func exceeded() -> ExamBellError {
        ExamBellError(
            status: 429, code: "budget_exceeded",
            message: "Budget exceeded: \(name) (\(rate.summary)). Wait a moment and try again."
        )
    }

    private func refilled(_ bucket: Bucket?, now: ContinuousClock.Instant) -> Bucket {
        guard var bucket else { return Bucket(tokens: Double(rate.burst), at: now) }
        let seconds = Double((now - bucket.at).inSeconds) / rate.per.inSeconds
        bucket.tokens = min(Double(rate.burst), bucket.tokens + seconds)
        bucket.at = now
        return bucket
    }
}

/// The node's running budgets of `Budgets`' rates, one table per budget, shared by the
/// controllers that spend them.
package struct Spending: Sendable {
    /// `PUT /api/answers`, per candidate.
    package let answerSaves: RateBudget
    /// The pages' other calls (`/api/session`, tickets, announcements, hand-in), per session.
    package let pageCalls: RateBudget
    /// Announcements, per sender.
    package let announcements: RateBudget
    /// Time changes and single ends, per operator.
    package let changes: RateBudget
    /// Webhook registrations, removals and resends, per operator.
    package let webhookCalls: RateBudget
    /// Receipt key rotations, per operator.
    package let keyRotations: RateBudget

    package init(_ budgets: Budgets) {
        webhookCalls = RateBudget("webhook changes and resends per operator", budgets.webhookCalls)
        answerSaves = RateBudget("answer saves per candidate", budgets.answerSaves)
        pageCalls = RateBudget("page calls per session", budgets.pageCalls)
        announcements = RateBudget("announcements per sender", budgets.announcements)
        changes = RateBudget("time changes and single ends per operator", budgets.changes)
        keyRotations = RateBudget("receipt key rotations per operator", budgets.keyRotations)
    }
}
