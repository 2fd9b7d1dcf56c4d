/// What a store (the DB, the state store, the queue) refuses or cannot do, in its own words.
///
/// Adapters throw it and know nothing of HTTP statuses or command-line flags; the server
/// gives each case its status when it answers (`ExamBellError(_:)`): 404, 409, 400, 503.
public enum StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Nothing stored under this id.
    case notFound(code: String, message: String)
    /// The change contradicts what is stored (an id taken, an exam in another state).
    case conflict(code: String, message: String)
    /// The request is wrong for the store (a malformed address, a queue group never made).
    case invalid(code: String, message: String)
    /// The backend could not be reached or did not answer in time; nothing was changed
    /// (unless the code says the outcome is unknown).
    case unavailable(code: String, message: String)

    public var code: String {
        switch self {
        case .notFound(let code, _), .conflict(let code, _), .invalid(let code, _), .unavailable(let code, _): code
        }
    }

    public var message: String {
        switch self {
        case .notFound(_, let message), .conflict(_, let message), .invalid(_, let message), .unavailable(_, let message): message
        }
    }

    public var description: String { "\(code): \(message)" }

    /// The backend could not answer; nothing was changed.
    public static func unavailable(_ message: String) -> StoreError {
        .unavailable(code: "service_unavailable", message: message)
    }

    /// No exam with this id.
    public static func examNotFound(_ examId: String) -> StoreError {
        .notFound(code: "exam_not_found", message: "No exam with id \(examId).")
    }

    /// The exam is in a state that does not allow the action.
    public static func wrongState(_ examId: String, is status: ExamStatus, action: String) -> StoreError {
        .conflict(code: "invalid_state", message: "Exam \(examId) is \(status.rawValue) and cannot \(action).")
    }

    /// The backend may or may not have committed the change: its COMMIT went out and no
    /// answer came back. Every other `unavailable` error changed nothing.
    public static func outcomeUnknown(_ message: String) -> StoreError {
        .unavailable(code: "database_outcome_unknown", message: message)
    }

    /// True for `outcomeUnknown`: read the data back to learn what happened.
    public var isOutcomeUnknown: Bool { isUnavailable && code == "database_outcome_unknown" }

    /// True when the backend could not answer (as opposed to a refusal).
    public var isUnavailable: Bool {
        if case .unavailable = self { return true }
        return false
    }
}

extension ExamBellError {
    /// The API's answer to a store's error: 404, 409, 400 or 503 with the store's code.
    public init(_ error: StoreError) {
        let status =
            switch error {
            case .notFound: 404
            case .conflict: 409
            case .invalid: 400
            case .unavailable: 503
            }
        self.init(status: status, code: error.code, message: error.message)
    }
}
