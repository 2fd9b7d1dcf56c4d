/// The id pattern every exam, candidate and proctor id follows: `^[A-Za-z0-9_-]{1,64}$`.
///
/// Ids travel in URLs, Redis keys and JSON, so the pattern keeps them safe in all three
/// without escaping.
public enum Identifier {
    /// The longest id accepted.
    public static let maxLength = 64

    /// Whether `id` matches `^[A-Za-z0-9_-]{1,64}$`.
    public static func isValid(_ id: String) -> Bool {
        let bytes = id.utf8
        guard !bytes.isEmpty, bytes.count <= maxLength else { return false }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
                true
            default:
                false
            }
        }
    }

    /// Throws a `400 invalid_id` error naming `field` when `id` does not match the pattern.
    public static func validate(_ id: String, field: String) throws(ExamBellError) {
        guard isValid(id) else {
            throw .badRequest(
                code: "invalid_id",
                "\(field) must match ^[A-Za-z0-9_-]{1,64}$"
            )
        }
    }
}
