import ExamBellCore
import Foundation
import SQLKit

/// `WebhookStore`: endpoints and the webhook outbox the dispatcher delivers from.
extension SQLExamStore {
    /// Writes `event` and one delivery row for each endpoint listening for its type, in the
    /// caller's transaction; nothing when no endpoint listens. Returns whether it was written
    /// (false also when a once-per-exam event exists already).
    @discardableResult
    static func insertWebhookEvent(_ event: WebhookEvent, nowMs: Int64, _ db: any SQLDatabase) async throws -> Bool {
        let listening = try await db.raw("SELECT webhook_id, events FROM webhook_endpoint WHERE deleted_at IS NULL").all().compactMap {
            row -> String? in
            let events = try row.decode(column: "events", as: String.self)
            return Self.eventTypes(events).contains(event.type) ? try row.decode(column: "webhook_id", as: String.self) : nil
        }
        guard !listening.isEmpty else { return false }
        let row = try await db.raw(
            """
            INSERT INTO webhook_event (event_id, plan_id, type, body, created_at)
            VALUES (\(bind: event.eventId), \(bind: event.examId), \(bind: event.type.rawValue), \(bind: event.body),
                \(bind: event.createdAt.iso8601))
            ON CONFLICT DO NOTHING
            RETURNING seq
            """
        ).first()
        guard let seq = try row?.decode(column: "seq", as: Int64.self) else { return false }
        let rows: [SQLQueryString] = listening.map { "(\(bind: $0), \(bind: seq), \(bind: event.examId), \(bind: nowMs))" }
        try await db.raw(
            "INSERT INTO webhook_delivery (webhook_id, event_seq, plan_id, next_attempt_ms) VALUES " + rows.joined(separator: ", ")
        ).run()
        return true
    }

    static func eventTypes(_ text: String) -> [WebhookEventType] {
        text.split(separator: ",").compactMap { WebhookEventType(rawValue: String($0)) }
    }

    public func createWebhook(_ endpoint: WebhookEndpoint, secret: String, limit: Int) async throws {
        let exclusive = executor.dialect.migrationLock
        try await transaction { db in
            // Counted and inserted with other registrations kept out (SQLite's writer lock;
            // PostgreSQL's advisory lock), so concurrent ones cannot pass the limit together.
            if let exclusive { try await db.raw(SQLQueryString(exclusive)).run() }
            let count =
                try await db.raw("SELECT COUNT(*) AS n FROM webhook_endpoint WHERE deleted_at IS NULL").first()?
                .decode(column: "n", as: Int.self) ?? 0
            guard count < limit else {
                throw ExamBellError(status: 429, code: "budget_exceeded", message: "At most \(limit) webhooks; remove one first.")
            }
            try await db.raw(
                """
                INSERT INTO webhook_endpoint (webhook_id, url, events, secret, created_by, created_at)
                VALUES (\(bind: endpoint.webhookId), \(bind: endpoint.url), \(bind: endpoint.events.map(\.rawValue).joined(separator: ",")),
                    \(bind: secret), \(bind: endpoint.createdBy), \(bind: endpoint.createdAt.iso8601))
                """
            ).run()
        }
    }

    public func webhooks() async throws -> [WebhookEndpoint] {
        try await connection { db in
            try await db.raw("SELECT * FROM webhook_endpoint WHERE deleted_at IS NULL ORDER BY created_at, webhook_id").all().map(
                Self.endpoint(from:))
        }
    }

    static func endpoint(from row: any SQLRow) throws -> WebhookEndpoint {
        WebhookEndpoint(
            webhookId: try row.decode(column: "webhook_id", as: String.self), url: try row.decode(column: "url", as: String.self),
            events: eventTypes(try row.decode(column: "events", as: String.self)),
            createdAt: try timestamp(row, "created_at") ?? Timestamp(secondsSince1970: 0),
            createdBy: try row.decode(column: "created_by", as: String.self)
        )
    }

    static func existingWebhook(_ webhookId: String, _ db: any SQLDatabase) async throws {
        let row = try await db.raw(
            "SELECT webhook_id FROM webhook_endpoint WHERE webhook_id = \(bind: webhookId) AND deleted_at IS NULL"
        ).first()
        guard row != nil else {
            throw StoreError.notFound(code: "webhook_not_found", message: "No webhook \(webhookId.prefix(64)).")
        }
    }

    public func deleteWebhook(_ webhookId: String, at: Timestamp) async throws {
        try await transaction { db in
            try await Self.existingWebhook(webhookId, db)
            try await db.raw("UPDATE webhook_endpoint SET deleted_at = \(bind: at.iso8601) WHERE webhook_id = \(bind: webhookId)").run()
            try await db.raw(
                """
                UPDATE webhook_delivery SET pending = 0, gave_up_at = \(bind: at.iso8601), claimed_until_ms = NULL
                WHERE webhook_id = \(bind: webhookId) AND pending = 1
                """
            ).run()
        }
    }

    public func webhookDeliveries(_ webhookId: String, limit: Int) async throws -> [WebhookDelivery] {
        try await connection { db in
            try await Self.existingWebhook(webhookId, db)
            return try await db.raw(
                """
                SELECT e.event_id, e.type, e.plan_id, e.created_at, d.attempts, d.last_status, d.last_error, d.last_response, d.delivered_at,
                    d.gave_up_at, d.pending, d.next_attempt_ms
                FROM webhook_delivery d JOIN webhook_event e ON e.seq = d.event_seq
                WHERE d.webhook_id = \(bind: webhookId) ORDER BY d.event_seq DESC LIMIT \(bind: limit)
                """
            ).all().map { row in
                let pending = try row.decode(column: "pending", as: Int.self) == 1
                return WebhookDelivery(
                    eventId: try row.decode(column: "event_id", as: String.self),
                    type: WebhookEventType(rawValue: try row.decode(column: "type", as: String.self)) ?? .examEnded,
                    examId: try row.decode(column: "plan_id", as: String.self),
                    createdAt: try Self.timestamp(row, "created_at") ?? Timestamp(secondsSince1970: 0),
                    attempts: try row.decode(column: "attempts", as: Int.self), lastStatus: try row.decode(column: "last_status", as: Int?.self),
                    lastError: try row.decode(column: "last_error", as: String?.self), deliveredAt: try Self.timestamp(row, "delivered_at"),
                    gaveUpAt: try Self.timestamp(row, "gave_up_at"),
                    nextAttemptMs: pending ? try row.decode(column: "next_attempt_ms", as: Int64.self) : nil,
                    lastResponse: try row.decode(column: "last_response", as: String?.self)
                )
            }
        }
    }

    public func recordWebhookEvent(_ event: WebhookEvent, nowMs: Int64) async throws -> Bool {
        try await transaction { db in try await Self.insertWebhookEvent(event, nowMs: nowMs, db) }
    }

    public func claimWebhookAttempts(nowMs: Int64, leaseUntilMs: Int64, limit: Int, excluding: [String]) async throws -> [WebhookAttempt] {
        try await transaction { db in
            let skip: SQLQueryString = excluding.isEmpty ? "" : "AND d.webhook_id NOT IN (\(binds: excluding))"
            let rows = try await db.raw(
                """
                SELECT d.webhook_id, d.event_seq, d.attempts, e.event_id, e.body, e.created_at, w.url, w.secret
                FROM webhook_delivery d
                    JOIN webhook_event e ON e.seq = d.event_seq
                    JOIN webhook_endpoint w ON w.webhook_id = d.webhook_id
                WHERE d.pending = 1 AND d.next_attempt_ms <= \(bind: nowMs)
                    AND (d.claimed_until_ms IS NULL OR d.claimed_until_ms < \(bind: nowMs))
                    \(skip)
                    AND NOT EXISTS (
                        SELECT 1 FROM webhook_delivery p
                        WHERE p.webhook_id = d.webhook_id AND p.plan_id = d.plan_id AND p.pending = 1 AND p.event_seq < d.event_seq
                    )
                ORDER BY d.event_seq LIMIT \(bind: limit)
                """
            ).all()
            var attempts: [WebhookAttempt] = []
            for row in rows {
                let webhookId = try row.decode(column: "webhook_id", as: String.self)
                let seq = try row.decode(column: "event_seq", as: Int64.self)
                let leased = try await db.raw(
                    """
                    UPDATE webhook_delivery SET claimed_until_ms = \(bind: leaseUntilMs)
                    WHERE webhook_id = \(bind: webhookId) AND event_seq = \(bind: seq) AND pending = 1
                        AND (claimed_until_ms IS NULL OR claimed_until_ms < \(bind: nowMs))
                    RETURNING event_seq
                    """
                ).first()
                guard leased != nil else { continue }
                attempts.append(
                    WebhookAttempt(
                        webhookId: webhookId, eventSeq: seq, eventId: try row.decode(column: "event_id", as: String.self),
                        url: try row.decode(column: "url", as: String.self), secret: try row.decode(column: "secret", as: String.self),
                        body: try row.decode(column: "body", as: String.self), attempts: try row.decode(column: "attempts", as: Int.self),
                        createdAt: try Self.timestamp(row, "created_at") ?? Timestamp(secondsSince1970: 0)
                    )
                )
            }
            return attempts
        }
    }

    public func recordWebhookAttempt(webhookId: String, eventSeq: Int64, _ outcome: WebhookAttemptOutcome, at: Timestamp) async throws {
        let (pending, deliveredAt, gaveUpAt, nextMs): (Int, String?, String?, Int64?) =
            switch outcome.next {
            case .delivered: (0, at.iso8601, nil, nil)
            case .gaveUp: (0, nil, at.iso8601, nil)
            case .retry(let ms): (1, nil, nil, ms)
            }
        try await connection { db in
            try await db.raw(
                """
                UPDATE webhook_delivery SET attempts = attempts + 1, last_status = \(bind: outcome.status),
                    last_error = \(bind: outcome.error), last_response = \(bind: outcome.response), claimed_until_ms = NULL,
                    pending = \(bind: pending), delivered_at = \(bind: deliveredAt), gave_up_at = \(bind: gaveUpAt),
                    next_attempt_ms = COALESCE(\(bind: nextMs), next_attempt_ms)
                WHERE webhook_id = \(bind: webhookId) AND event_seq = \(bind: eventSeq)
                """
            ).run()
        }
    }

    public func releaseWebhookAttempts(_ attempts: [(webhookId: String, eventSeq: Int64)]) async throws {
        guard !attempts.isEmpty else { return }
        try await connection { db in
            for attempt in attempts {
                try await db.raw(
                    """
                    UPDATE webhook_delivery SET claimed_until_ms = NULL
                    WHERE webhook_id = \(bind: attempt.webhookId) AND event_seq = \(bind: attempt.eventSeq)
                    """
                ).run()
            }
        }
    }

    public func resendWebhookDelivery(webhookId: String, eventId: String, nowMs: Int64) async throws {
        try await transaction { db in
            try await Self.existingWebhook(webhookId, db)
            let row = try await db.raw(
                """
                UPDATE webhook_delivery SET pending = 1, delivered_at = NULL, gave_up_at = NULL, next_attempt_ms = \(bind: nowMs)
                WHERE webhook_id = \(bind: webhookId) AND event_seq = (SELECT seq FROM webhook_event WHERE event_id = \(bind: eventId))
                RETURNING event_seq
                """
            ).first()
            guard row != nil else {
                throw StoreError.notFound(code: "delivery_not_found", message: "Webhook \(webhookId) has no delivery of \(eventId.prefix(64)).")
            }
        }
    }

    public func examsAwaitingDeliveryComplete(endedSince: Timestamp) async throws -> [String] {
        try await connection { db in
            let listening = try await db.raw("SELECT events FROM webhook_endpoint WHERE deleted_at IS NULL").all().contains {
                Self.eventTypes(try $0.decode(column: "events", as: String.self)).contains(.deliveryComplete)
            }
            guard listening else { return [] }
            return try await db.raw(
                """
                SELECT p.plan_id FROM exam_plan p
                WHERE p.status = \(bind: ExamStatus.completed.rawValue) AND p.end_datetime >= \(bind: endedSince.iso8601)
                    AND NOT EXISTS (
                        SELECT 1 FROM webhook_event e WHERE e.plan_id = p.plan_id AND e.type = \(bind: WebhookEventType.deliveryComplete.rawValue)
                    )
                ORDER BY p.end_datetime
                """
            ).all().map { try $0.decode(column: "plan_id", as: String.self) }
        }
    }

    public func webhookBacklog() async throws -> Int {
        try await connection { db in
            try await db.raw("SELECT COUNT(*) AS n FROM webhook_delivery WHERE pending = 1").first()?.decode(column: "n", as: Int.self) ?? 0
        }
    }
}
