import ExamBellCore
import SQLKit

/// The versioned schema. Table and column names are fixed by DESIGN.md: operators query them.
extension SQLExamStore {
    /// Migrations in order; a migration once shipped never changes, a new one is appended.
    static func migrations(_ dialect: SQLStoreDialect) -> [[String]] {
        [
            [
                """
                CREATE TABLE exam_plan (
                    plan_id TEXT PRIMARY KEY,
                    title TEXT NOT NULL,
                    status TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    start_datetime TEXT,
                    scheduled_end_datetime TEXT,
                    end_datetime TEXT,
                    ended_by TEXT,
                    end_reason TEXT
                )
                """,
                """
                CREATE TABLE exam_candidate (
                    candidate_id TEXT PRIMARY KEY,
                    plan_id TEXT NOT NULL REFERENCES exam_plan(plan_id),
                    name TEXT NOT NULL,
                    status TEXT NOT NULL,
                    last_active_time TEXT
                )
                """,
                "CREATE INDEX exam_candidate_plan_id ON exam_candidate(plan_id)",
                """
                CREATE TABLE exam_proctor (
                    proctor_id TEXT PRIMARY KEY,
                    plan_id TEXT NOT NULL REFERENCES exam_plan(plan_id),
                    name TEXT NOT NULL
                )
                """,
                "CREATE INDEX exam_proctor_plan_id ON exam_proctor(plan_id)",
                """
                CREATE TABLE exam_outbox (
                    id \(dialect.autoIncrementPrimaryKey),
                    plan_id TEXT NOT NULL REFERENCES exam_plan(plan_id),
                    topic TEXT NOT NULL,
                    payload TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    claimed_until TEXT,
                    published_at TEXT
                )
                """,
                "CREATE INDEX exam_outbox_unpublished ON exam_outbox(published_at, claimed_until)",
                """
                CREATE TABLE exam_audit_log (
                    id \(dialect.autoIncrementPrimaryKey),
                    plan_id TEXT NOT NULL,
                    actor TEXT NOT NULL,
                    action TEXT NOT NULL,
                    reason TEXT,
                    detail TEXT,
                    at TEXT NOT NULL
                )
                """,
                "CREATE INDEX exam_audit_log_plan_id ON exam_audit_log(plan_id)",
            ],
            // 2: the answer sheet (items of the plan, candidates' saved answers).
            [
                "ALTER TABLE exam_plan ADD COLUMN choice_items INTEGER NOT NULL DEFAULT 20",
                "ALTER TABLE exam_plan ADD COLUMN short_items INTEGER NOT NULL DEFAULT 0",
                """
                CREATE TABLE exam_answer (
                    candidate_id TEXT NOT NULL REFERENCES exam_candidate(candidate_id),
                    item_no INTEGER NOT NULL,
                    plan_id TEXT NOT NULL,
                    answer TEXT NOT NULL,
                    saved_at TEXT NOT NULL,
                    PRIMARY KEY (candidate_id, item_no)
                )
                """,
                "CREATE INDEX exam_answer_plan_id ON exam_answer(plan_id)",
            ],
            // 3: when each candidate's browser acknowledged the end (last_active_time keeps the end time).
            [
                "ALTER TABLE exam_candidate ADD COLUMN acknowledged_at TEXT"
            ],
            // 4: the exam day: a candidate's own planned end, the lock and final-save receipts,
            // announcements, and late submissions (answers after the grace window, kept).
            [
                "ALTER TABLE exam_candidate ADD COLUMN scheduled_end_datetime TEXT",
                "ALTER TABLE exam_candidate ADD COLUMN locked_at TEXT",
                "ALTER TABLE exam_candidate ADD COLUMN final_saved_at TEXT",
                "ALTER TABLE exam_candidate ADD COLUMN final_saved_items INTEGER",
                """
                CREATE TABLE exam_announcement (
                    id \(dialect.autoIncrementPrimaryKey),
                    plan_id TEXT NOT NULL REFERENCES exam_plan(plan_id),
                    message TEXT NOT NULL,
                    candidate_ids TEXT,
                    actor TEXT NOT NULL,
                    created_at TEXT NOT NULL
                )
                """,
                "CREATE INDEX exam_announcement_plan_id ON exam_announcement(plan_id)",
                """
                CREATE TABLE exam_late_submission (
                    id \(dialect.autoIncrementPrimaryKey),
                    plan_id TEXT NOT NULL REFERENCES exam_plan(plan_id),
                    candidate_id TEXT NOT NULL REFERENCES exam_candidate(candidate_id),
                    answers TEXT NOT NULL,
                    arrived_at TEXT NOT NULL,
                    end_datetime TEXT NOT NULL,
                    decision TEXT,
                    decided_by TEXT,
                    decided_at TEXT
                )
                """,
                "CREATE INDEX exam_late_submission_plan_id ON exam_late_submission(plan_id)",
            ],
            // 5: named operators, their console sessions and API tokens (hashes only).
            [
                """
                CREATE TABLE exam_operator (
                    name TEXT PRIMARY KEY,
                    role TEXT NOT NULL,
                    password_hash TEXT NOT NULL,
                    disabled INTEGER NOT NULL DEFAULT 0,
                    created_at TEXT NOT NULL
                )
                """,
                """
                CREATE TABLE exam_operator_session (
                    secret_hash TEXT PRIMARY KEY,
                    operator_name TEXT NOT NULL REFERENCES exam_operator(name),
                    csrf_token TEXT NOT NULL,
                    expires_at TEXT NOT NULL
                )
                """,
                "CREATE INDEX exam_operator_session_operator ON exam_operator_session(operator_name)",
                """
                CREATE TABLE exam_operator_token (
                    id TEXT PRIMARY KEY,
                    secret_hash TEXT NOT NULL UNIQUE,
                    operator_name TEXT NOT NULL REFERENCES exam_operator(name),
                    label TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    last_used_at TEXT,
                    revoked_at TEXT
                )
                """,
                "CREATE INDEX exam_operator_token_operator ON exam_operator_token(operator_name)",
            ],
            // 6: a candidate's late saves gather in one open (undecided) row, the latest answer
            // per item: `open_key` is its candidate id until decided, then NULL.
            [
                "ALTER TABLE exam_late_submission ADD COLUMN open_key TEXT",
                "ALTER TABLE exam_late_submission ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1",
                "CREATE UNIQUE INDEX exam_late_submission_open ON exam_late_submission(open_key)",
            ],
            // 7: when a candidate's saves were last audited (`AnswerWindow.savesAuditedEvery`).
            ["ALTER TABLE exam_candidate ADD COLUMN saves_audited_at TEXT"],
            // 8: how far each page's device clock was from the server's (the SDK's `locked`).
            ["ALTER TABLE exam_candidate ADD COLUMN clock_offset_ms INTEGER"],
            // 9: webhooks: endpoints, the events to deliver (written in the changes'
            // transactions), one delivery row per endpoint and event. Scheduling times are
            // milliseconds (`*_ms`): retries start within seconds.
            [
                """
                CREATE TABLE webhook_endpoint (
                    webhook_id TEXT PRIMARY KEY,
                    url TEXT NOT NULL,
                    events TEXT NOT NULL,
                    secret TEXT NOT NULL,
                    created_by TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    deleted_at TEXT
                )
                """,
                """
                CREATE TABLE webhook_event (
                    seq \(dialect.autoIncrementPrimaryKey),
                    event_id TEXT NOT NULL UNIQUE,
                    plan_id TEXT NOT NULL,
                    type TEXT NOT NULL,
                    body TEXT NOT NULL,
                    created_at TEXT NOT NULL
                )
                """,
                "CREATE UNIQUE INDEX webhook_event_once ON webhook_event(plan_id, type) WHERE type = 'exam.delivery_complete'",
                """
                CREATE TABLE webhook_delivery (
                    webhook_id TEXT NOT NULL REFERENCES webhook_endpoint(webhook_id),
                    event_seq BIGINT NOT NULL REFERENCES webhook_event(seq),
                    plan_id TEXT NOT NULL,
                    pending INTEGER NOT NULL DEFAULT 1,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    last_status INTEGER,
                    last_error TEXT,
                    last_response TEXT,
                    next_attempt_ms BIGINT NOT NULL,
                    claimed_until_ms BIGINT,
                    delivered_at TEXT,
                    gave_up_at TEXT,
                    PRIMARY KEY (webhook_id, event_seq)
                )
                """,
                "CREATE INDEX webhook_delivery_due ON webhook_delivery(pending, next_attempt_ms)",
                "CREATE INDEX webhook_delivery_line ON webhook_delivery(webhook_id, plan_id, pending, event_seq)",
            ],
            // 10: the audit chain (DESIGN, "Proof"): each row's place, its predecessor's hash and
            // its own, filled in by `chainAudit` (rows written before it are linked the same way);
            // one head row per exam makes chainers take turns.
            [
                "ALTER TABLE exam_audit_log ADD COLUMN seq INTEGER",
                "ALTER TABLE exam_audit_log ADD COLUMN prev_hash TEXT",
                "ALTER TABLE exam_audit_log ADD COLUMN hash TEXT",
                "CREATE UNIQUE INDEX exam_audit_log_chain ON exam_audit_log(plan_id, seq)",
                "CREATE INDEX exam_audit_log_unlinked ON exam_audit_log(plan_id, id) WHERE hash IS NULL",
                "CREATE TABLE exam_audit_head (plan_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL)",
            ],
            // 11: receipts (one a candidate, the signed file as issued), their signing keys
            // (the private half sealed with the web nodes' secret), and how a candidate that
            // ended alone ended (`CandidateEndCause`; NULL: by the exam's end).
            [
                """
                CREATE TABLE exam_receipt (
                    candidate_id TEXT PRIMARY KEY,
                    plan_id TEXT NOT NULL,
                    body TEXT NOT NULL,
                    issued_at TEXT NOT NULL
                )
                """,
                "CREATE INDEX exam_receipt_plan_id ON exam_receipt(plan_id)",
                """
                CREATE TABLE exam_receipt_key (
                    key_id TEXT PRIMARY KEY,
                    public_key TEXT NOT NULL,
                    sealed_private_key TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    retired_at TEXT
                )
                """,
                "ALTER TABLE exam_candidate ADD COLUMN ended_by TEXT",
            ],
            // 12: every move of planned ends, for the exam report (who moved whose end, when):
            // `ends` holds the candidates' own ends it set as JSON (`{"c1":"…"}`).
            [
                """
                CREATE TABLE exam_time_change (
                    id \(dialect.autoIncrementPrimaryKey),
                    plan_id TEXT NOT NULL,
                    actor TEXT NOT NULL,
                    reason TEXT,
                    at TEXT NOT NULL,
                    everyone INTEGER NOT NULL,
                    scheduled_end_datetime TEXT NOT NULL,
                    ends TEXT NOT NULL
                )
                """,
                "CREATE INDEX exam_time_change_plan_id ON exam_time_change(plan_id)",
            ],
            // 13: an ended exam's state retired once its sessions closed (`StateRetirement`):
            // the state store's hashes the DB has no columns for, kept here, and when it was.
            [
                """
                CREATE TABLE exam_state_archive (
                    plan_id TEXT NOT NULL,
                    state_key TEXT NOT NULL,
                    field TEXT NOT NULL,
                    value TEXT NOT NULL,
                    PRIMARY KEY (state_key, field)
                )
                """,
                "CREATE INDEX exam_state_archive_plan_id ON exam_state_archive(plan_id)",
                "ALTER TABLE exam_plan ADD COLUMN state_retired_at TEXT",
            ],
        ]
    }

    /// Applies the migrations not yet applied, each in its own transaction with its version
    /// row; safe when several nodes start at once (the dialect's migration lock).
    public func migrate() async throws {
        let lock = executor.dialect.migrationLock
        for (index, statements) in Self.migrations(executor.dialect).enumerated() {
            let version = index + 1
            try await executor.withLongTransaction(timeLimit: .seconds(120)) { db in
                if let lock { try await db.raw(SQLQueryString(lock)).run() }
                try await db.raw(
                    "CREATE TABLE IF NOT EXISTS exam_schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
                ).run()
                let applied = try await db.raw(
                    "SELECT version FROM exam_schema_version WHERE version = \(bind: version)"
                ).first()
                guard applied == nil else { return }
                for statement in statements {
                    try await db.raw(SQLQueryString(statement)).run()
                }
                try await db.raw(
                    "INSERT INTO exam_schema_version (version, applied_at) VALUES (\(bind: version), \(bind: Timestamp.now().iso8601))"
                ).run()
            }
        }
    }
}
