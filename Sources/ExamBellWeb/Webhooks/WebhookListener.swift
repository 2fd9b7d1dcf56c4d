import ExamBellCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging

/// `exambell webhook listen`: a small receiver for platform developers trying ExamBell. It
/// answers every POST: 200 when the `ExamBell-Signature` holds for the raw body and secret
/// (and prints the event, one JSON line on standard output), 401 naming why when it does not
/// (printed on standard error).
public enum WebhookListener {
    /// What the listener saw: a verified body, or a refusal.
    public enum Heard: Sendable {
        case event(String)
        case refused(String)
    }

    public static func application(
        secret: String, host: String, port: Int, logger: Logger, heard: @escaping @Sendable (Heard) -> Void,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router()
        let receive: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            let body = String(buffer: buffer)
            let header = request.headers[HTTPField.Name(WebhookSignature.header)!]
            do {
                try WebhookSignature.verify(header: header, body: body, secret: secret, now: Int64(Date().timeIntervalSince1970))
            } catch {
                let eventId = request.headers[HTTPField.Name("ExamBell-Event-Id")!] ?? "-"
                heard(.refused("refused \(eventId): \(error)"))
                return Response(
                    status: .unauthorized, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: JSONText.object(["error": JSONText.string("\(error)")])))
                )
            }
            heard(.event(body))
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{\"ok\":true}")))
        }
        // Any path, the root included.
        router.post("/", use: receive)
        router.post("**", use: receive)
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "ExamBell-webhook-listener"),
            onServerRunning: { await onServerRunning($0.localAddress?.port ?? port) }, logger: logger
        )
    }
}
