/// Every failure a caller can be told about, with the HTTP status it maps to.
///
/// The server turns it into `{"error":{"code","message"}}`; the core stays free of the
/// server framework, so the status is a plain number.
public struct ExamBellError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The HTTP status: 400, 401, 403, 404, 409, 413, 503.
    public var status: Int
    /// A stable machine-readable code, like `exam_not_found`.
    public var code: String
    /// A sentence for people.
    public var message: String

    public init(status: Int, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String { "\(status) \(code): \(message)" }

    /// 400: the request itself is wrong.
    public static func badRequest(code: String = "bad_request", _ message: String) -> ExamBellError {
        ExamBellError(status: 400, code: code, message: message)
    }

    /// 401: no or wrong credentials.
    public static func unauthorized(_ message: String) -> ExamBellError {
        ExamBellError(status: 401, code: "unauthorized", message: message)
    }

    /// 403: valid credentials for something else.
    public static func forbidden(_ message: String) -> ExamBellError {
        ExamBellError(status: 403, code: "forbidden", message: message)
    }

    /// 409: the exam is in a state that does not allow the action.
    public static func wrongState(_ examId: String, is status: ExamStatus, action: String) -> ExamBellError {
        ExamBellError(
            status: 409, code: "invalid_state",
            message: "Exam \(examId) is \(status.rawValue) and cannot \(action)."
        )
    }

    /// 409: something with this id exists already.
    public static func conflict(code: String, _ message: String) -> ExamBellError {
        ExamBellError(status: 409, code: code, message: message)
    }

    /// 413 `body_too_large`, naming the limit in MiB and bytes.
    public static func bodyTooLarge(limit: Int) -> ExamBellError {
        let size = limit % 1_048_576 == 0 ? "\(limit / 1_048_576) MiB (\(limit) bytes)" : "\(limit) bytes"
        return ExamBellError(
            status: 413, code: "body_too_large",
            message: "The request body is larger than the limit of \(size); split it into smaller requests."
        )
    }

    /// 503: a backing service (DB, state store, queue) cannot be reached.
    public static func unavailable(_ message: String) -> ExamBellError {
        ExamBellError(status: 503, code: "service_unavailable", message: message)
    }
}
