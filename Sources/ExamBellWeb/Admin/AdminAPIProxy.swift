import AsyncHTTPClient
import ExamBellCore
import ExamBellHTTP
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1

/// The admin server's (관리 서버) only way to the exam: the web server's HTTP API.
///
/// When `exambell admin` runs on its own, the console's `/api/…` calls are forwarded to the
/// web server (`--web-url`) through the `HTTPClient` the node is built with, with the
/// operator's own credentials (bearer token, or session cookie and CSRF token); the admin server never touches the DB or Redis.
package struct AdminAPIProxy: Sendable {
    package let webURL: URL
    package let maxBodySize: Int
    package let http: HTTPClient

    package init(webURL: URL, maxBodySize: Int, http: HTTPClient) {
        self.webURL = webURL
        self.maxBodySize = maxBodySize
        self.http = http
    }

    package func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        for method in [HTTPRequest.Method.get, .post, .delete] {
            router.on("api/**", method: method) { request, context in try await forward(request, context: context) }
        }
    }

    private func forward<Context: RequestContext>(_ request: Request, context: Context) async throws -> Response {
        let path = request.uri.path
        guard path.hasPrefix("/api/"), !path.contains("..") else { throw HTTPError(.notFound) }
        var target = HTTPClientRequest(url: webURL.absoluteString.trimmingSuffix("/") + path)
        target.method = .init(rawValue: request.method.rawValue)
        // The operator's credentials pass through as they came: a bearer token, or the
        // console's session cookie with its CSRF token.
        for (field, name) in [(HTTPField.Name.authorization, "Authorization"), (.cookie, "Cookie"), (OperatorAuth.csrfHeader, "X-CSRF-Token")] {
            if let value = request.headers[field] { target.headers.add(name: name, value: value) }
        }
        // Like any proxy, it says whom it forwards for: the web node (which trusts this server's
        // address with --trusted-proxies) throttles logins per operator's address, not per admin server.
        let peer = (context as? any RemoteAddressRequestContext)?.remoteAddress?.ipAddress
        let chain = request.headers[values: TrustedProxies.forwardedFor] + (peer.map { [$0] } ?? [])
        if !chain.isEmpty { target.headers.add(name: "X-Forwarded-For", value: chain.joined(separator: ", ")) }
        if request.method == .post {
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: maxBodySize)
            } catch {
                throw ExamBellError.bodyTooLarge(limit: maxBodySize)
            }
            target.body = .bytes(body)
            target.headers.add(name: "Content-Type", value: "application/json")
        }
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await http.execute(target, timeout: .seconds(30))
            body = try await response.body.collect(upTo: 64 << 20)
        } catch {
            throw ExamBellError.unavailable("The web server at \(webURL.absoluteString) cannot be reached.")
        }
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        for cookie in response.headers["Set-Cookie"] { headers.append(HTTPField(name: .setCookie, value: cookie)) }
        return Response(status: .init(code: Int(response.status.code)), headers: headers, body: .init(byteBuffer: body))
    }
}

extension String {
    package func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
