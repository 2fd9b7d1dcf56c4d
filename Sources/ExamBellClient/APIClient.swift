import AsyncHTTPClient
import ExamBellCore
import Foundation
import NIOCore
import NIOHTTP1

/// A small client of the web server's JSON API, for `exambell end`, the demo seeding and the
/// bench. It runs on the `HTTPClient` it is given (the process-wide `HTTPClient.shared` unless
/// a caller needs its own pool).
public struct APIClient: Sendable {
    public let baseURL: URL
    let adminToken: String
    let http: HTTPClient
    /// How long one call may take, from sending to the last byte of the answer.
    public var timeout: Duration = .seconds(30)

    public init(baseURL: URL, adminToken: String, http: HTTPClient = .shared) {
        self.baseURL = baseURL
        self.adminToken = adminToken
        self.http = http
    }

    /// Sends a request and decodes the JSON answer. An error answer becomes `ExamBellError` with
    /// its status and code; a web server that cannot be reached, `ExamBellError.unavailable`.
    public func call<T: Decodable>(_ method: String, _ path: String, body: [String: any Sendable]? = nil, as type: T.Type)
        async throws -> T
    {
        var request = HTTPClientRequest(url: url(path))
        request.method = HTTPMethod(rawValue: method)
        request.headers.add(name: "Authorization", value: "Bearer \(adminToken)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        }
        let (status, data) = try await send(request)
        guard (200..<300).contains(status) else {
            if let envelope = try? JSONDecoder().decode(Envelope.self, from: data) {
                throw ExamBellError(status: status, code: envelope.error.code, message: envelope.error.message)
            }
            throw ExamBellError(status: status, code: "http_\(status)", message: "The web server answered \(status).")
        }
        return try JSONDecoder().decode(T.self, from: data)
    }

    /// Posts a JSON text to any URL (another server's publish endpoint, for the bench); throws
    /// unless it answers 2xx.
    public func post(json: String, to url: URL) async throws {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: json))
        let (status, _) = try await send(request)
        guard (200..<300).contains(status) else {
            throw ExamBellError(status: status, code: "http_\(status)", message: "\(url.absoluteString) answered \(status).")
        }
    }

    /// Waits until `/health` answers 200, up to `timeout`.
    public func waitUntilHealthy(timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let (status, _) = try? await send(HTTPClientRequest(url: url("health"))), status == 200 { return }
            guard ContinuousClock.now < deadline else {
                throw ExamBellError.unavailable("The web server at \(baseURL.absoluteString) did not come up.")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private func url(_ path: String) -> String {
        let base = baseURL.absoluteString
        return (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/" + path
    }

    private func send(_ request: HTTPClientRequest) async throws -> (status: Int, body: Data) {
        do {
            let response = try await http.execute(request, timeout: .init(timeout))
            let body = try await response.body.collect(upTo: 64 << 20)
            return (Int(response.status.code), Data(body.readableBytesView))
        } catch let error as CancellationError {
            throw error
        } catch {
            throw ExamBellError.unavailable("The web server at \(baseURL.absoluteString) cannot be reached (\(error)).")
        }
    }
}

/// The error body of the API: `{"error":{"code","message"}}`.
private struct Envelope: Decodable {
    struct Detail: Decodable {
        var code: String
        var message: String
    }
    var error: Detail
}
