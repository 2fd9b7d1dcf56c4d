import ExamBellCore
import Foundation
import Hummingbird
import NIOCore

extension Request {
    /// The body decoded as JSON; 400 with the reason when it is missing or not valid JSON of
    /// that shape, 413 when it is larger than the limit.
    package func decodeJSON<T: Decodable>(_ type: T.Type, limit: Int) async throws -> T {
        guard let value = try await decodeOptionalJSON(T.self, limit: limit) else {
            throw ExamBellError.badRequest(code: "invalid_json", "A JSON body is required.")
        }
        return value
    }

    /// The body decoded as JSON, or nil when it is empty.
    package func decodeOptionalJSON<T: Decodable>(_ type: T.Type, limit: Int) async throws -> T? {
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw ExamBellError.bodyTooLarge(limit: limit)
        } catch {
            // The connection closed or the body's time ran out mid-body: no 413, and no 500.
            throw ExamBellError.badRequest(code: "incomplete_body", "The request's body did not arrive whole.")
        }
        guard buffer.readableBytes > 0 else { return nil }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            throw ExamBellError.badRequest(code: "invalid_json", Self.describe(error))
        } catch {
            throw ExamBellError.badRequest(code: "invalid_json", "The body is not valid JSON.")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let text = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return text.isEmpty ? "the body" : String(text.drop(while: { $0 == "." }))
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context)
            return "Missing field \(key.stringValue)" + (parent == "the body" ? "." : " in \(parent).")
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "Wrong type at \(path(context))."
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "The body is not valid JSON." : "Invalid value at \(path(context))."
        @unknown default:
            return "The body is not valid JSON."
        }
    }
}

/// A JSON response with a status.
package struct JSONResponse<Value: Encodable & Sendable>: ResponseGenerator {
    package var status: HTTPResponse.Status = .ok
    package var value: Value

    package init(status: HTTPResponse.Status = .ok, value: Value) {
        self.status = status
        self.value = value
    }

    package func response(from request: Request, context: some RequestContext) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }
}

/// A text body of a given type (JSON lines, CSV), for exports.
package struct TextResponse: ResponseGenerator {
    package var contentType: String
    package var text: String
    /// Offered as a download under this name.
    package var filename: String?

    package init(contentType: String, text: String, filename: String? = nil) {
        self.contentType = contentType
        self.text = text
        self.filename = filename
    }

    package func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: contentType]
        if let filename { headers[.contentDisposition] = "attachment; filename=\"\(filename)\"" }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// `?format=`: `json` (the default) or one other export format.
package enum ExportFormat: String {
    case json, jsonl, csv

    package init(_ request: Request, allowed: [ExportFormat]) throws {
        let raw = request.uri.queryParameters.get("format") ?? "json"
        guard let format = ExportFormat(rawValue: raw), format == .json || allowed.contains(format) else {
            let names = ([.json] + allowed).map(\.rawValue).joined(separator: ", ")
            throw ExamBellError.badRequest(code: "invalid_format", "format must be one of: \(names).")
        }
        self = format
    }
}
