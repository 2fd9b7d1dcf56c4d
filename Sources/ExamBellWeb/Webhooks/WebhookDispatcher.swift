import AsyncHTTPClient
import ExamBellCore
import ExamBellRuntime
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Synchronization

/// Delivers webhook events from the DB's webhook outbox (web nodes; every web node runs one).
///
/// Each pass leases the deliveries that are due and first in line for their endpoint and exam
/// (`WebhookStore.claimWebhookAttempts`: an exam's events go out in order, and a lease means
/// no two nodes make one attempt at once), and makes each attempt on its own task: a POST of
/// the event's stored body, signed, with a 10 s limit, no redirects, and at most 1 KiB of the
/// answer kept. A 2xx is delivered; anything else is retried (`WebhookRetry`). An endpoint has
/// at most `perEndpoint` attempts in flight on a node, so a slow one never holds the others'
/// attempts; nothing here is on the path of an end.
///
/// It also writes each ended exam's `exam.delivery_complete` once every candidate locked and
/// saved, or once the answer grace ran out.
public final class WebhookDispatcher: Service, Sendable {
    package let store: any ExamStore
    package let roster: RosterBuilder
    package let targets: WebhookTargets
    package let retry: WebhookRetry
    package let interval: Duration
    package let answerGrace: Duration
    package let logger: Logger
    package let http: HTTPClient
    /// Attempts in flight on this node, by endpoint.
    private let inFlight = Mutex<[String: Int]>([:])
    /// Rung when an attempt ends: the next event of its exam is due at once, not at the next pass.
    private let wakeup = Wakeup()
    static package let perEndpoint = 4
    static package let attemptLimit: Duration = .seconds(10)
    /// A lease outlives an attempt's limit by a wide margin.
    static package let leaseMs: Int64 = 30_000
    static package let responseKept = 1024

    package init(
        store: any ExamStore, roster: RosterBuilder, targets: WebhookTargets, retryFor: Duration, interval: Duration, answerGrace: Duration,
        logger: Logger
    ) {
        self.store = store
        self.roster = roster
        self.targets = targets
        self.retry = WebhookRetry(retryFor: retryFor)
        self.interval = interval
        self.answerGrace = answerGrace
        self.logger = logger
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10), read: .seconds(10)),
            connectionPool: .init(idleTimeout: .seconds(30))
        )
        configuration.httpVersion = .http1Only
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            var lastCompleteCheck = ContinuousClock.now - .seconds(60)
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                for attempt in await claim() {
                    group.addTask { await self.attempt(attempt) }
                }
                if ContinuousClock.now - lastCompleteCheck >= .seconds(1) {
                    lastCompleteCheck = .now
                    await checkDeliveryComplete()
                }
                try? await cancelWhenGracefulShutdown { await self.wakeup.wait(upTo: self.interval) }
            }
            group.cancelAll()
        }
        try? await http.shutdown()
    }

    /// Leases what is due, leaving out endpoints already at their cap on this node.
    package func claim() async -> [WebhookAttempt] {
        let busy = inFlight.withLock { $0.filter { $0.value >= Self.perEndpoint }.map(\.key) }
        let now = Timestamp.milliseconds()
        let attempts: [WebhookAttempt]
        do {
            attempts = try await store.claimWebhookAttempts(nowMs: now, leaseUntilMs: now + Self.leaseMs, limit: 64, excluding: busy)
        } catch {
            logger.warning("webhook deliveries could not be read", metadata: ["error": "\(error)"])
            return []
        }
        // The query caps nothing per endpoint within one pass: past the cap, the lease is let go.
        var taken: [WebhookAttempt] = []
        var released: [(webhookId: String, eventSeq: Int64)] = []
        inFlight.withLock { counts in
            for attempt in attempts {
                if counts[attempt.webhookId, default: 0] >= Self.perEndpoint {
                    released.append((attempt.webhookId, attempt.eventSeq))
                } else {
                    counts[attempt.webhookId, default: 0] += 1
                    taken.append(attempt)
                }
            }
        }
        try? await store.releaseWebhookAttempts(released)
        return taken
    }

    /// One attempt, recorded.
    package func attempt(_ attempt: WebhookAttempt) async {
        defer {
            inFlight.withLock { $0[attempt.webhookId, default: 1] -= 1 }
            wakeup.signal()
        }
        let started = ContinuousClock.now
        var outcome = await send(attempt)
        if Task.isCancelled && outcome.status == nil {
            // Stopping: the attempt did not finish; another pass (or node) makes it.
            try? await store.releaseWebhookAttempts([(attempt.webhookId, attempt.eventSeq)])
            return
        }
        let delivered = outcome.status.map { (200..<300).contains($0) } ?? false
        let nowMs = Timestamp.milliseconds()
        if delivered {
            outcome.next = .delivered
        } else if let next = retry.next(afterAttempt: attempt.attempts + 1, createdAt: attempt.createdAt, nowMs: nowMs) {
            outcome.next = .retry(atMs: next)
        } else {
            outcome.next = .gaveUp
        }
        do {
            try await store.recordWebhookAttempt(webhookId: attempt.webhookId, eventSeq: attempt.eventSeq, outcome, at: .now())
        } catch {
            logger.warning("a webhook attempt could not be recorded", metadata: ["eventId": "\(attempt.eventId)", "error": "\(error)"])
        }
        let metadata: Logger.Metadata = [
            "webhookId": "\(attempt.webhookId)", "eventId": "\(attempt.eventId)", "attempt": "\(attempt.attempts + 1)",
            "status": "\(outcome.status.map(String.init) ?? outcome.error ?? "-")",
            "took": "\(ContinuousClock.now - started)",
        ]
        if delivered { logger.debug("webhook delivered", metadata: metadata) } else { logger.info("webhook attempt failed", metadata: metadata) }
    }

    /// POSTs the event; the outcome's `next` is filled in by the caller.
    package func send(_ attempt: WebhookAttempt) async -> WebhookAttemptOutcome {
        func failed(_ why: String) -> WebhookAttemptOutcome { WebhookAttemptOutcome(status: nil, error: why, response: nil, next: .gaveUp) }
        guard let url = URL(string: attempt.url) else { return failed("the URL does not parse") }
        do {
            _ = try await targets.check(url)
        } catch {
            return failed("\(error)")
        }
        var request = HTTPClientRequest(url: attempt.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "ExamBell-Webhooks/1")
        request.headers.add(name: "ExamBell-Event-Id", value: attempt.eventId)
        request.headers.add(
            name: WebhookSignature.header,
            value: WebhookSignature.sign(body: attempt.body, secret: attempt.secret, time: Int64(Date().timeIntervalSince1970))
        )
        request.body = .bytes(ByteBuffer(string: attempt.body))
        do {
            let response = try await http.execute(request, deadline: .now() + .seconds(10))
            var kept = ByteBuffer()
            do {
                for try await part in response.body {
                    let room = Self.responseKept - kept.readableBytes
                    if room <= 0 { break }
                    var part = part
                    if let slice = part.readSlice(length: min(room, part.readableBytes)) { kept.writeImmutableBuffer(slice) }
                }
            } catch {
                // The status counts; a body cut short does not.
            }
            let text = kept.readableBytes > 0 ? String(decoding: kept.readableBytesView, as: UTF8.self) : nil
            return WebhookAttemptOutcome(status: Int(response.status.code), error: nil, response: text, next: .gaveUp)
        } catch {
            return failed(Self.describe(error))
        }
    }

    static package func describe(_ error: any Error) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout: return "no answer within 10 s"
            default: return "\(error)"
            }
        }
        return "\(error)"
    }

    /// Writes `exam.delivery_complete` for exams whose end is fully received, or whose grace ran out.
    package func checkDeliveryComplete() async {
        let since = Timestamp.now().adding(seconds: -3600)
        guard let waiting = try? await store.examsAwaitingDeliveryComplete(endedSince: since), !waiting.isEmpty else { return }
        for examId in waiting {
            do {
                guard let plan = try await store.exam(examId), let end = plan.endDatetime else { continue }
                let delivery = try await roster.delivery(of: plan)
                let missing = Set((delivery.missing["locked"] ?? []) + (delivery.missing["saved"] ?? [])).sorted()
                let graceOver = Timestamp.now() >= end.adding(seconds: Int64(answerGrace.components.seconds) + 1)
                guard missing.isEmpty || graceOver else { continue }
                let event = WebhookEvent.deliveryComplete(
                    examId: examId, candidates: delivery.counts.candidates, told: delivery.counts.told, locked: delivery.counts.locked,
                    saved: delivery.counts.saved, missing: missing, at: .now()
                )
                _ = try await store.recordWebhookEvent(event, nowMs: Timestamp.milliseconds())
            } catch {
                logger.warning("delivery-complete check failed", metadata: ["examId": "\(examId)", "error": "\(error)"])
            }
        }
    }
}

/// When a failed delivery is tried again: the first retry within 5 s, then doubling (each
/// spread at random over its upper half) up to 10 minutes apart, until `retryFor` after the
/// event; then it is given up.
public struct WebhookRetry: Sendable {
    public let retryFor: Duration

    public init(retryFor: Duration) {
        self.retryFor = retryFor
    }

    /// The upper bound of the wait after attempt `n` (1-based), in ms.
    public static func ceilingMs(afterAttempt n: Int) -> Int64 {
        min(600_000, 5_000 << Int64(min(max(n - 1, 0), 20)))
    }

    /// When to try again after attempt `n` failed, or nil when the retries ran out.
    public func next(afterAttempt n: Int, createdAt: Timestamp, nowMs: Int64) -> Int64? {
        let horizon = createdAt.secondsSince1970 * 1000 + retryFor.components.seconds * 1000
        guard nowMs < horizon else { return nil }
        let ceiling = Self.ceilingMs(afterAttempt: n)
        return nowMs + Int64.random(in: ceiling / 2...ceiling)
    }
}

/// A bell a loop waits on between passes: `wait(upTo:)` returns when rung or when the time
/// is up (a ring while nobody waits is kept for the next wait).
final package class Wakeup: Sendable {
    private let state = Mutex<(rung: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    package func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.rung = true
            return nil
        }
        waiter?.resume()
    }

    /// Waits for a ring, or `limit` (or cancellation: the timer rings then too).
    package func wait(upTo limit: Duration) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(for: limit)
                self.signal()
            }
            group.addTask { await self.rung() }
            await group.next()
            group.cancelAll()
        }
        // The timer's late ring (after a real one) must not cut the next wait short.
        state.withLock { $0.rung = false }
    }

    private func rung() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                if state.rung {
                    state.rung = false
                    return true
                }
                state.waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }
}
