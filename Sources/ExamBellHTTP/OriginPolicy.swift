import ExamBellCore
import Foundation
import Hummingbird

/// Which pages may use a node from a browser: open a socket (`/ws`) or call the API with a
/// credential. A page's `Origin` must be the public web URL's, one of the extra allowed
/// origins, or the origin the request was sent to, when that `Host` is one this node serves
/// (its public URLs' hosts, an IP address or `localhost`): a DNS-rebinding page, whose
/// `Origin` and `Host` both name the attacker's domain, is refused. A request without an
/// `Origin` is no browser page's and is left to its credential. WebSocket libraries send
/// `ws://HOST` (no port): taken when HOST is the request's `Host` and one this node serves.
/// Any other scheme (`null`, `file://`) is refused.
package struct OriginPolicy: Sendable {
    /// Lowercased `scheme://host[:port]` origins allowed besides the request's own.
    package var allowedOrigins: Set<String>
    /// Lowercased host names (without port) this node serves under.
    package var servedHosts: Set<String>
    /// The platforms' origins (`--allowed-origin`): pages there are answered with CORS headers.
    package var crossOrigins: Set<String>

    package init(allowedOrigins: Set<String> = [], servedURLs: [String] = [], crossOrigins: Set<String> = []) {
        self.allowedOrigins = Set(allowedOrigins.map { $0.lowercased() })
        self.servedHosts = Set(servedURLs.compactMap { URL(string: $0)?.host?.lowercased() })
        self.crossOrigins = Set(crossOrigins.map { $0.lowercased() })
    }

    /// The `--allowed-origin` value `text` as an origin (`scheme://host[:port]`, lowercased), or
    /// why it is none.
    static package func platformOrigin(_ text: String) throws(ExamBellError) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let url = URL(string: trimmed), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = url.host, !host.isEmpty, url.path.isEmpty || url.path == "/", url.query == nil, url.fragment == nil,
            url.user == nil
        else {
            throw .badRequest(
                code: "invalid_origin", "--allowed-origin takes an origin such as https://cbt.example or http://127.0.0.1:9000, not \(text).")
        }
        return "\(scheme)://\(host.lowercased())\(url.port.map { ":\($0)" } ?? "")"
    }

    /// Whether a request with these `Origin` and `Host` headers may go on.
    package func allows(origin: String?, host: String?) -> Bool {
        guard let origin = origin?.lowercased() else { return true }
        if allowedOrigins.contains(origin) { return true }
        guard let host = host?.lowercased(), !host.isEmpty, serves(host) else { return false }
        if origin.hasPrefix("ws://") || origin.hasPrefix("wss://") {
            let named = origin.drop { $0 != "/" }.dropFirst(2)
            return Self.name(of: named) == Self.name(of: Substring(host))
        }
        return origin == "http://\(host)" || origin == "https://\(host)"
    }

    /// The host name of `host[:port]` (or `[v6]:port`).
    static package func name(of host: Substring) -> Substring {
        if host.hasPrefix("[") { return host.dropFirst().prefix { $0 != "]" } }
        return host.split(separator: ":", maxSplits: 1).first ?? ""
    }

    /// Whether `host` (a `Host` header: name or address, maybe with a port) is one of ours.
    package func serves(_ host: String) -> Bool {
        let name = Self.name(of: Substring(host))
        if name == "localhost" || servedHosts.contains(String(name)) { return true }
        // An address literal is no name a rebinding page could own.
        return name.contains(":") || (!name.isEmpty && name.allSatisfy { $0.isNumber || $0 == "." } && name.split(separator: ".").count == 4)
    }
}

/// `/api/…` called from a page another origin serves: 403 `origin_not_allowed` before any
/// work (see `OriginPolicy`).
package struct OriginMiddleware<Context: RequestContext>: RouterMiddleware {
    package let policy: OriginPolicy

    package init(policy: OriginPolicy) {
        self.policy = policy
    }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path.hasPrefix("/api/"), !policy.allows(origin: request.headers[.origin], host: request.head.authority) {
            throw ExamBellError(status: 403, code: "origin_not_allowed", message: Self.refusal)
        }
        return try await next(request, context)
    }

    static package var refusal: String { "The API is taken from ExamBell's own pages and the origins allowed by --allowed-origin only." }
}

/// CORS for the platforms' pages (`--allowed-origin`): the browser API and the SDK answer a
/// listed origin with `Access-Control-Allow-Origin`, errors included (it comes before the
/// error middleware), and its preflights with the methods and headers the SDK uses. Any
/// other origin gets no CORS header (and `OriginMiddleware` refuses its API calls).
package struct CORSMiddleware<Context: RequestContext>: RouterMiddleware {
    package let policy: OriginPolicy

    package init(policy: OriginPolicy) {
        self.policy = policy
    }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard let origin = request.headers[.origin], path.hasPrefix("/api/") || path.hasPrefix("/sdk/") else {
            return try await next(request, context)
        }
        let listed = policy.crossOrigins.contains(origin.lowercased())
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            guard listed else {
                // Answered here: this middleware comes before the one that writes errors.
                let refusal = ExamBellError(status: 403, code: "origin_not_allowed", message: OriginMiddleware<Context>.refusal)
                return Response(
                    status: .forbidden, headers: [.contentType: "application/json; charset=utf-8"],
                    body: .init(byteBuffer: ByteBuffer(string: APIErrorMiddleware<Context>.body(refusal)))
                )
            }
            return Response(
                status: .noContent,
                headers: [
                    .accessControlAllowOrigin: origin, .accessControlAllowMethods: "GET, POST, PUT",
                    .accessControlAllowHeaders: "Authorization, Content-Type", .accessControlMaxAge: "600", .vary: "Origin",
                ]
            )
        }
        var response = try await next(request, context)
        if listed {
            response.headers[.accessControlAllowOrigin] = origin
            response.headers[.vary] = "Origin"
        }
        return response
    }
}
