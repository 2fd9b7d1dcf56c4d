import ExamBellCore
import SQLKit

/// `StateArchiveStore`: what the DB keeps of an exam's state once it was retired.
extension SQLExamStore {
    public func examsToRetire(endedBefore: Timestamp, limit: Int) async throws -> [String] {
        try await connection { db in
            try await db.raw(
                """
                SELECT plan_id FROM exam_plan
                WHERE status = \(bind: ExamStatus.completed.rawValue) AND state_retired_at IS NULL
                    AND end_datetime < \(bind: endedBefore.iso8601)
                ORDER BY end_datetime, plan_id LIMIT \(bind: limit)
                """
            ).all().map { try $0.decode(column: "plan_id", as: String.self) }
        }
    }

    public func archiveState(examId: String, hashes: [String: [String: String]]) async throws {
        let rows = hashes.sorted { $0.key < $1.key }.flatMap { key, fields in
            fields.sorted { $0.key < $1.key }.map { (key: key, field: $0.key, value: $0.value) }
        }
        guard !rows.isEmpty else { return }
        try await transaction { db in
            // A few hundred rows a statement: well within either backend's bound parameters.
            for start in stride(from: 0, to: rows.count, by: Self.archiveRowsPerStatement) {
                let chunk = rows[start..<min(start + Self.archiveRowsPerStatement, rows.count)]
                let values: [SQLQueryString] = chunk.map { "(\(bind: examId), \(bind: $0.key), \(bind: $0.field), \(bind: $0.value))" }
                try await db.raw(
                    "INSERT INTO exam_state_archive (plan_id, state_key, field, value) VALUES "
                        + values.joined(separator: ", ")
                        + " ON CONFLICT (state_key, field) DO UPDATE SET value = excluded.value"
                ).run()
            }
        }
    }

    public func markStateRetired(examId: String, at time: Timestamp) async throws {
        try await connection { db in
            try await db.raw("UPDATE exam_plan SET state_retired_at = \(bind: time.iso8601) WHERE plan_id = \(bind: examId)").run()
        }
    }

    public func archivedFields(_ key: String) async throws -> [String: String] {
        try await connection { db in
            var fields: [String: String] = [:]
            for row in try await db.raw("SELECT field, value FROM exam_state_archive WHERE state_key = \(bind: key)").all() {
                fields[try row.decode(column: "field", as: String.self)] = try row.decode(column: "value", as: String.self)
            }
            return fields
        }
    }

    static let archiveRowsPerStatement = 200
}
