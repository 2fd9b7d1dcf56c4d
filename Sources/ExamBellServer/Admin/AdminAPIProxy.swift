import ExamBellCore
import Foundation
import Hummingbird

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The admin server's (관리 서버) only way to the exam: the web server's HTTP API.
///
/// When `exambell admin` runs on its own, the console's `/api/…` calls are forwarded to the
/// web server (`--web-url`) with the operator's own bearer token; the admin server never
/// touches the DB or Redis.
struct AdminAPIProxy: Sendable {
    let webURL: URL
    let maxBodySize: Int

    func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        for method in [HTTPRequest.Method.get, .post] {
            router.on("api/**", method: method) { request, context in try await forward(request, context: context) }
        }
    }

    private func forward<Context: RequestContext>(_ request: Request, context: Context) async throws -> Response {
        let path = request.uri.path
        guard path.hasPrefix("/api/"), !path.contains("..") else { throw HTTPError(.notFound) }
        var target = URLRequest(url: URL(string: path, relativeTo: webURL)!.absoluteURL)
        target.httpMethod = request.method.rawValue
        target.timeoutInterval = 30
        if let authorization = request.headers[.authorization] {
            target.setValue(authorization, forHTTPHeaderField: "Authorization")
        }
        if request.method == .post {
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: maxBodySize)
            } catch {
                throw ExamBellError(status: 413, code: "body_too_large", message: "The request body is larger than \(maxBodySize) bytes.")
            }
            target.httpBody = Data(body.readableBytesView)
            target.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: target)
        } catch {
            throw ExamBellError.unavailable("The web server at \(webURL.absoluteString) cannot be reached.")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 502
        return Response(
            status: .init(code: status),
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }
}
