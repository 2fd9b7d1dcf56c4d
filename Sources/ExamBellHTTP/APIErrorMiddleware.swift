import ExamBellCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// Turns every failure into `{"error":{"code","message"}}` with its status, so that no
/// caller ever sees a framework's error page, and an unexpected error is logged, not shown.
package struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {

    package init() {

    }
    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        var response = await answer(request, context: context, next: next)
        // Browsers must take every answer for the type it says (a JSON error is no script).
        response.headers[Self.contentTypeOptions] = "nosniff"
        return response
    }

    static package var contentTypeOptions: HTTPField.Name { HTTPField.Name("X-Content-Type-Options")! }

    private func answer(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async -> Response {
        do {
            return try await next(request, context)
        } catch let error as ExamBellError {
            return Self.response(error, logger: context.logger)
        } catch let error as StoreError {
            return Self.response(ExamBellError(error), logger: context.logger)
        } catch let error as HTTPError {
            return Self.response(Self.translate(error))
        } catch {
            context.logger.error("unexpected error", metadata: ["error": "\(String(reflecting: error))"])
            return Self.response(ExamBellError(status: 500, code: "internal", message: "Something went wrong on the server."))
        }
    }

    static package func translate(_ error: HTTPError) -> ExamBellError {
        let code: String =
            switch error.status.code {
            case 404: "not_found"
            case 405: "method_not_allowed"
            case 413: "body_too_large"
            case 401: "unauthorized"
            default: "bad_request"
            }
        return ExamBellError(status: error.status.code, code: code, message: error.body ?? error.status.reasonPhrase)
    }

    static package func response(_ error: ExamBellError, logger: Logger) -> Response {
        if error.status >= 500 {
            logger.error("request failed", metadata: ["code": "\(error.code)", "message": "\(error.message)"])
        }
        return response(error)
    }

    static package func response(_ error: ExamBellError) -> Response {
        Response(
            status: .init(code: error.status),
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: body(error)))
        )
    }

    /// `{"error":{"code","message"}}`.
    static package func body(_ error: ExamBellError) -> String {
        JSONText.object(["error": JSONText.object(["code": JSONText.string(error.code), "message": JSONText.string(error.message)])])
    }
}
