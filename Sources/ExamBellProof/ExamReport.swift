import ExamBellCore
import Foundation

/// The exam report (DESIGN, "Proof"): one row a candidate with what happened to it, for an
/// appeals board; JSON or CSV.
public struct ExamReport: Sendable, Codable {
    /// A move of the candidate's planned end: when, by whom, to what.
    public struct TimeChange: Sendable, Codable, Hashable {
        public var at: String
        public var by: String
        public var scheduledEndDatetime: String
        public var reason: String?
    }

    /// DESIGN's report columns, in order.
    public struct Row: Sendable, Codable, Hashable {
        public var candidateId: String
        public var name: String
        public var status: String
        public var endDatetime: String?
        public var endedBy: String?
        public var told: String?
        public var locked: String?
        public var saved: String?
        public var lastSavedAt: String?
        public var answeredCount: Int
        public var disconnects: Int?
        public var offlineSeconds: Int?
        public var timeChanges: [TimeChange]
        public var answersSha256: String?

        /// Missing values are `null`, not absent keys: every row has every column.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(candidateId, forKey: .candidateId)
            try container.encode(name, forKey: .name)
            try container.encode(status, forKey: .status)
            try container.encode(endDatetime, forKey: .endDatetime)
            try container.encode(endedBy, forKey: .endedBy)
            try container.encode(told, forKey: .told)
            try container.encode(locked, forKey: .locked)
            try container.encode(saved, forKey: .saved)
            try container.encode(lastSavedAt, forKey: .lastSavedAt)
            try container.encode(answeredCount, forKey: .answeredCount)
            try container.encode(disconnects, forKey: .disconnects)
            try container.encode(offlineSeconds, forKey: .offlineSeconds)
            try container.encode(timeChanges, forKey: .timeChanges)
            try container.encode(answersSha256, forKey: .answersSha256)
        }

        /// The cells of its CSV line, in the columns' order.
        var cells: [String] {
            [
                candidateId, name, status, endDatetime ?? "", endedBy ?? "", told ?? "", locked ?? "", saved ?? "", lastSavedAt ?? "",
                String(answeredCount), disconnects.map(String.init) ?? "", offlineSeconds.map(String.init) ?? "",
                timeChanges.map { change in
                    "\(change.at) by \(change.by): \(change.scheduledEndDatetime)" + (change.reason.map { " (\($0))" } ?? "")
                }.joined(separator: "; "),
                answersSha256 ?? "",
            ]
        }
    }

    public static let columns = [
        "candidateId", "name", "status", "endDatetime", "endedBy", "told", "locked", "saved", "lastSavedAt", "answeredCount",
        "disconnects", "offlineSeconds", "timeChanges", "answersSha256",
    ]

    public var examId: String
    public var status: String
    public var generatedAt: String
    /// Candidates whose receipt is not issued yet (their `answersSha256` is null).
    public var receiptsPending: Int
    public var candidates: [Row]

    public init(examId: String, status: String, generatedAt: String, receiptsPending: Int, candidates: [Row]) {
        self.examId = examId
        self.status = status
        self.generatedAt = generatedAt
        self.receiptsPending = receiptsPending
        self.candidates = candidates
    }

    /// What one candidate's row is made of.
    public struct Inputs: Sendable {
        public var plan: ExamPlan
        public var facts: ReportFacts
        public var now: Timestamp
        /// Each instance's last heartbeat (ms) for spans still open (`Connectivity.measure`).
        public var lastSeen: [String: Int64]

        public init(plan: ExamPlan, facts: ReportFacts, now: Timestamp, lastSeen: [String: Int64]) {
            self.plan = plan
            self.facts = facts
            self.now = now
            self.lastSeen = lastSeen
        }
    }

    /// One candidate's row: its DB row, the end's receipts (`told`, `locked`, `saved`, from the
    /// DB or the state store), its answered count, connection spans and signed receipt.
    public static func row(
        _ candidate: Candidate, told: Timestamp?, locked: Timestamp?, saved: Timestamp?, answered: Int, spans: [ConnectionSpan],
        receipt: Receipt?, _ inputs: Inputs
    ) -> Row {
        let end = candidate.endTime(in: inputs.plan)
        let until = (end ?? inputs.now).secondsSince1970 * 1000
        let connectivity = Connectivity.measure(spans, until: until, lastSeen: inputs.lastSeen)
        let endedBy = end == nil ? nil : inputs.facts.endedBy[candidate.candidateId] ?? "exam"
        return Row(
            candidateId: candidate.candidateId, name: candidate.name, status: candidate.status.rawValue,
            endDatetime: end?.iso8601, endedBy: endedBy, told: told?.iso8601, locked: locked?.iso8601, saved: saved?.iso8601,
            lastSavedAt: inputs.facts.lastSavedAt[candidate.candidateId]?.iso8601, answeredCount: answered,
            disconnects: connectivity?.disconnects, offlineSeconds: connectivity?.offlineSeconds,
            timeChanges: inputs.facts.timeChanges.compactMap { change in
                change.end(for: candidate, in: inputs.plan).map {
                    TimeChange(at: change.at.iso8601, by: change.actor, scheduledEndDatetime: $0.iso8601, reason: change.reason)
                }
            },
            answersSha256: receipt?.answersSha256
        )
    }

    /// The report as CSV (RFC 4180, CRLF lines, a header line). A cell a spreadsheet would
    /// read as a formula (it begins with `=`, `+`, `-`, `@`, a tab or a carriage return) is
    /// prefixed with `'`.
    public var csv: String {
        var lines = [Self.columns.map(Self.cell).joined(separator: ",")]
        lines.reserveCapacity(candidates.count + 1)
        for row in candidates { lines.append(row.cells.map(Self.cell).joined(separator: ",")) }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// One CSV cell: formula-like text defused, then quoted when it holds a comma, a quote or
    /// a line break.
    public static func cell(_ text: String) -> String {
        var value = text
        if let first = value.unicodeScalars.first, "=+-@\t\r".unicodeScalars.contains(first) { value = "'" + value }
        // Scalars, not characters: "\r\n" is one character, equal to neither.
        guard value.unicodeScalars.contains(where: { ",\"\n\r".unicodeScalars.contains($0) }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
