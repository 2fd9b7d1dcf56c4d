import Foundation

/// Writes JSON text by hand where the exact bytes are part of the contract.
///
/// `JSONEncoder` does not promise key order, and the wire shapes of DESIGN.md are pinned
/// byte for byte, so the fixed shapes (and the API's error body) are written with this instead.
public enum JSONText {
    /// `value` as a JSON string literal, quotes included: only what JSON requires is escaped
    /// (`"`, `\`, control characters, as `\n` or `\u001f`), as Python's `json.dumps` with
    /// `ensure_ascii=False` does; the canonical JSON of receipts and the audit chain uses it.
    public static func string(_ value: String) -> String {
        var out = "\""
        out.reserveCapacity(value.utf8.count + 2)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case let c where c.value < 0x20:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
        return out
    }

    /// `value` as a JSON string literal, or `null`.
    public static func optional(_ value: String?) -> String {
        value.map(string) ?? "null"
    }

    /// An array of JSON strings.
    public static func array(_ values: [String]) -> String {
        "[" + values.map(string).joined(separator: ",") + "]"
    }

    /// An object with the given keys in the given order; values are JSON text already.
    public static func object(_ fields: KeyValuePairs<String, String>) -> String {
        "{" + fields.map { "\(string($0.key)):\($0.value)" }.joined(separator: ",") + "}"
    }

    /// An object with the given keys in the given order (built at run time); values are JSON text already.
    public static func object(pairs fields: [(String, String)]) -> String {
        "{" + fields.map { "\(string($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }

    /// Decodes `text` as `T` with a plain `JSONDecoder`.
    static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(text.utf8))
    }
}
