import ExamBellCore
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A small client of the web server's JSON API, for `exambell end` and the demo seeding.
struct APIClient: @unchecked Sendable {
    let baseURL: URL
    let adminToken: String
    /// The bench gives it a session with many connections per host, for bursts of ends.
    var session: URLSession = .shared

    /// Sends a request and decodes the JSON answer; an error answer becomes `ExamBellError`.
    func call<T: Decodable>(_ method: String, _ path: String, body: [String: any Sendable]? = nil, as type: T.Type)
        async throws -> T
    {
        var request = URLRequest(url: baseURL.appendingPathComponent(path))
        request.httpMethod = method
        request.setValue("Bearer \(adminToken)", forHTTPHeaderField: "Authorization")
        request.timeoutInterval = 30
        if let body {
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
        }
        let (data, response) = try await session.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        guard (200..<300).contains(status) else {
            if let envelope = try? JSONDecoder().decode(Envelope.self, from: data) {
                throw ExamBellError(status: status, code: envelope.error.code, message: envelope.error.message)
            }
            throw ExamBellError(status: status, code: "http_\(status)", message: "The web server answered \(status).")
        }
        return try JSONDecoder().decode(T.self, from: data)
    }

    /// Waits until `/health` answers, up to `timeout`.
    func waitUntilHealthy(timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let (_, response) = try? await URLSession.shared.data(from: baseURL.appendingPathComponent("health")),
                (response as? HTTPURLResponse)?.statusCode == 200
            {
                return
            }
            guard ContinuousClock.now < deadline else {
                throw ExamBellError.unavailable("The web server at \(baseURL) did not come up.")
            }
            try await Task.sleep(for: .milliseconds(100))
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
