import ExamBellCore
import SQLKit

/// `OutboxStore`: the transactional outbox the relay publishes from.
extension SQLExamStore {
    public func claimOutbox(now: Timestamp, leaseUntil: Timestamp, limit: Int) async throws -> [OutboxEntry] {
        try await transaction { db in
            let rows = try await db.raw(
                """
                SELECT id, plan_id, topic, payload FROM exam_outbox
                WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < \(bind: now.iso8601))
                ORDER BY id LIMIT \(bind: limit)
                """
            ).all()
            var entries: [OutboxEntry] = []
            for row in rows {
                let id = try row.decode(column: "id", as: Int64.self)
                let claimed = try await db.raw(
                    """
                    UPDATE exam_outbox SET claimed_until = \(bind: leaseUntil.iso8601)
                    WHERE id = \(bind: id) AND published_at IS NULL
                        AND (claimed_until IS NULL OR claimed_until < \(bind: now.iso8601))
                    RETURNING id
                    """
                ).first()
                guard claimed != nil else { continue }
                entries.append(
                    try OutboxEntry(
                        id: id, examId: try row.decode(column: "plan_id", as: String.self),
                        topic: try row.decode(column: "topic", as: String.self), payload: try row.decode(column: "payload", as: String.self)
                    )
                )
            }
            return entries
        }
    }

    public func markPublished(outboxId: Int64, at: Timestamp) async throws {
        try await connection { db in
            try await db.raw("UPDATE exam_outbox SET published_at = \(bind: at.iso8601) WHERE id = \(bind: outboxId)").run()
        }
    }

    public func outboxBacklog() async throws -> Int {
        try await connection { db in
            try await db.raw("SELECT COUNT(*) AS n FROM exam_outbox WHERE published_at IS NULL").first()?
                .decode(column: "n", as: Int.self) ?? 0
        }
    }

    public func publishedOutbox(since: Timestamp) async throws -> [OutboxEntry] {
        try await connection { db in
            try await db.raw(
                "SELECT id, plan_id, topic, payload FROM exam_outbox WHERE published_at >= \(bind: since.iso8601) ORDER BY id"
            ).all().map { row in
                try OutboxEntry(
                    id: try row.decode(column: "id", as: Int64.self), examId: try row.decode(column: "plan_id", as: String.self),
                    topic: try row.decode(column: "topic", as: String.self), payload: try row.decode(column: "payload", as: String.self)
                )
            }
        }
    }
}
