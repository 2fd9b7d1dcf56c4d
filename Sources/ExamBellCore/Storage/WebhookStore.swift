/// The DB's role of webhooks: endpoints, and the outbox of events to deliver to them.
///
/// Events are written by the changes they report, in their transactions (`endExam`,
/// `changeTime`, `endCandidates`): an event exists only for what committed, and is not lost
/// by a node that dies after the commit. Each gets one delivery row per endpoint subscribed
/// at that moment.
public protocol WebhookStore: Sendable {
    /// Registers an endpoint; its secret is kept for signing. 429 `budget_exceeded` when
    /// `limit` endpoints exist already (counted and inserted in one exclusive transaction).
    func createWebhook(_ endpoint: WebhookEndpoint, secret: String, limit: Int) async throws

    /// The endpoints not removed, oldest first.
    func webhooks() async throws -> [WebhookEndpoint]

    /// Removes an endpoint; its pending deliveries are given up. 404 `webhook_not_found`.
    func deleteWebhook(_ webhookId: String, at: Timestamp) async throws

    /// The endpoint's deliveries, newest first, at most `limit`. 404 `webhook_not_found`.
    func webhookDeliveries(_ webhookId: String, limit: Int) async throws -> [WebhookDelivery]

    /// Records an event outside another change (`exam.delivery_complete`): false when the
    /// exam has one of this type already (that type is once per exam).
    func recordWebhookEvent(_ event: WebhookEvent, nowMs: Int64) async throws -> Bool

    /// Leases up to `limit` deliveries that are due at `nowMs` and first in line for their
    /// endpoint and exam (an exam's events go out in order), skipping the endpoints in
    /// `excluding`; each is leased until `leaseUntilMs`, so no other dispatcher takes it.
    func claimWebhookAttempts(nowMs: Int64, leaseUntilMs: Int64, limit: Int, excluding: [String]) async throws -> [WebhookAttempt]

    /// Records an attempt's outcome and ends the lease.
    func recordWebhookAttempt(webhookId: String, eventSeq: Int64, _ outcome: WebhookAttemptOutcome, at: Timestamp) async throws

    /// Lets leases go (a dispatcher stopping with attempts in flight).
    func releaseWebhookAttempts(_ attempts: [(webhookId: String, eventSeq: Int64)]) async throws

    /// Sends a delivery again now (delivered or given up before included). 404 when unknown.
    func resendWebhookDelivery(webhookId: String, eventId: String, nowMs: Int64) async throws

    /// Completed exams that ended at or after `endedSince` with no `exam.delivery_complete`
    /// yet, when some endpoint listens for it.
    func examsAwaitingDeliveryComplete(endedSince: Timestamp) async throws -> [String]

    /// Deliveries not yet delivered nor given up.
    func webhookBacklog() async throws -> Int
}
