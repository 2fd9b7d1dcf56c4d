import Foundation

/// The reason an operator gives for an action.
public enum Reason {
    /// The trimmed reason (nil when empty); 400 when longer than 500 characters, or missing
    /// while `required`.
    public static func validate(_ text: String?, required: Bool) throws -> String? {
        let reason = text?.trimmingCharacters(in: .whitespacesAndNewlines)
        guard TextLimit.fits(reason ?? "", characters: 500) else {
            throw ExamBellError.badRequest(code: "invalid_reason", "reason must be at most 500 characters (2,000 bytes).")
        }
        guard let reason, !reason.isEmpty else {
            if required { throw ExamBellError.badRequest(code: "reason_required", "A reason is required (at most 500 characters).") }
            return nil
        }
        return reason
    }
}
