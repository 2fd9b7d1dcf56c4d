import Crypto
import ExamBellCore
import Foundation

/// The audit log of an exam as a hash chain (DESIGN, "Proof"): row `seq` carries the hash of
/// row `seq - 1` as `prevHash`, and its own `hash` is the hex SHA-256 of `prevHash` followed by
/// the row's canonical JSON without `hash`. Changing, removing or reordering a row breaks the
/// chain at that row; the head hash, written down at the end of the day, pins its length.
public enum AuditChain {
    /// The first row's `prevHash`.
    public static let genesis = String(repeating: "0", count: 64)

    /// The row as it is hashed and exported, without its `hash`.
    public static func row(_ entry: AuditEntry, seq: Int, prevHash: String) -> JSONValue {
        .object([
            "examId": .string(entry.examId), "seq": .int(Int64(seq)), "prevHash": .string(prevHash),
            "actor": .string(entry.actor), "action": .string(entry.action), "reason": .optional(entry.reason),
            "detail": .optional(entry.detail), "at": .string(entry.at.iso8601),
        ])
    }

    /// The hash of a row whose predecessor's hash is `prevHash`.
    public static func hash(prevHash: String, row: JSONValue) -> String {
        SHA256.hash(data: Data((prevHash + row.canonical).utf8)).hex
    }

    /// `entries` appended after a chain whose last row is `seq` with `hash` (0 and `genesis`
    /// for an empty chain): each with its `seq`, `prevHash` and `hash`.
    public static func link(_ entries: [AuditEntry], after head: (seq: Int, hash: String)) -> [AuditEntry] {
        var (seq, previous) = head
        return entries.map { entry in
            seq += 1
            var linked = entry
            linked.seq = seq
            linked.prevHash = previous
            linked.hash = hash(prevHash: previous, row: row(entry, seq: seq, prevHash: previous))
            previous = linked.hash ?? previous
            return linked
        }
    }

    /// One line of the `?format=jsonl` export: the row with its `hash`.
    public static func exportLine(_ entry: AuditEntry) -> String {
        guard case .object(var fields) = row(entry, seq: entry.seq ?? 0, prevHash: entry.prevHash ?? "") else { return "{}" }
        fields["hash"] = .optional(entry.hash)
        return JSONValue.object(fields).canonical
    }

    /// What a check of an exported chain found.
    public struct Verdict: Sendable, Equatable {
        /// Rows checked.
        public var rows: Int
        /// The last row's hash when the chain holds.
        public var head: String?
        /// The first broken row and why, nil when the chain holds.
        public var problem: String?
        public var holds: Bool { problem == nil }
    }

    /// Checks a JSON-lines export: every row's `seq` follows the last, its `prevHash` is the
    /// last row's `hash` (the first's is `genesis`), and its `hash` matches its content.
    /// With `head`, the last row's hash must be that one (a chain cut short holds otherwise).
    public static func verify(jsonl text: String, head expectedHead: String? = nil) -> Verdict {
        let lines = text.split(whereSeparator: \.isNewline).filter { !$0.allSatisfy(\.isWhitespace) }
        var previous = genesis
        for (index, line) in lines.enumerated() {
            let number = index + 1
            func broken(_ why: String) -> Verdict { Verdict(rows: index, head: nil, problem: "row \(number): \(why)") }
            guard let value = try? JSONValue.parse(line), case .object = value else { return broken("not a JSON object") }
            guard let seq = value["seq"]?.intValue else { return broken("no seq") }
            guard seq == Int64(number) else {
                return broken("seq is \(seq) where \(number) was expected: a row was removed, added or reordered")
            }
            guard let prevHash = value["prevHash"]?.stringValue, prevHash == previous else {
                return broken(
                    number == 1
                        ? "prevHash is not \(genesis.prefix(8))…: the chain does not start here"
                        : "prevHash does not match row \(number - 1)'s hash: a row before it was changed, removed or reordered")
            }
            guard let claimed = value["hash"]?.stringValue, claimed == hash(prevHash: prevHash, row: value.removing("hash")) else {
                return broken("hash does not match the row's content: the row was changed")
            }
            previous = claimed
        }
        if let expectedHead, lines.count > 0, previous != expectedHead.lowercased() {
            return Verdict(
                rows: lines.count, head: nil, problem: "the last row's hash is not the head \(expectedHead): rows were cut off or added at the end")
        }
        return Verdict(rows: lines.count, head: lines.isEmpty ? nil : previous, problem: nil)
    }
}

extension Digest {
    /// Lowercase hex.
    public var hex: String { map { String(format: "%02x", $0) }.joined() }
}
