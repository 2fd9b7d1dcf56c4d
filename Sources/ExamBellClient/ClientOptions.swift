import ArgumentParser
import AsyncHTTPClient
import Foundation

/// Options of the commands that call a running web server's API.
public struct ClientOptions: ParsableArguments {
    @Option(help: "Where the web server is (EXAMBELL_WEB_URL; default http://127.0.0.1:8080).")
    var webUrl: String?

    @Option(help: "An operator's API token, made in the console (EXAMBELL_API_TOKEN); the audit log names that operator.")
    var apiToken: String?

    @Option(help: "The bootstrap admin token (EXAMBELL_ADMIN_TOKEN), acting as `admin`; prefer an operator's --api-token.")
    var adminToken: String?

    public init() {}

    /// The client these options name (an API token before the admin token); refuses a URL
    /// that is not http(s) or a missing token.
    public func client(http: HTTPClient = .shared) throws -> APIClient {
        let base = webUrl ?? ProcessInfo.processInfo.environment["EXAMBELL_WEB_URL"].nonEmpty ?? "http://127.0.0.1:8080"
        guard let url = URL(string: base), url.scheme == "http" || url.scheme == "https" else {
            throw ValidationError("--web-url must be an http:// or https:// URL, not \(base).")
        }
        let environment = ProcessInfo.processInfo.environment
        guard
            let token = apiToken ?? environment["EXAMBELL_API_TOKEN"].nonEmpty ?? adminToken
                ?? environment["EXAMBELL_ADMIN_TOKEN"].nonEmpty
        else {
            throw ValidationError("A token is required: --api-token (EXAMBELL_API_TOKEN) or --admin-token (EXAMBELL_ADMIN_TOKEN).")
        }
        return APIClient(baseURL: url, adminToken: token, http: http)
    }
}

extension String? {
    /// The value, unless it is missing or empty (an environment variable set to "").
    fileprivate var nonEmpty: String? { self?.isEmpty == false ? self : nil }
}
