import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellRuntime
import ExamBellSQL
import ExamBellServer
import ExamBellSocket
import ExamBellTestSupport
import ExamBellWeb
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The webhook tests' receiver and the API shapes they read.
extension WebhookTests {
    /// A receiver on a loopback port: records every request; answers as `answer` says.
    final class Receiver: Sendable {
        struct Heard: Sendable {
            var eventId: String?
            var signature: String?
            var body: String
        }

        final class Log: Sendable {
            let list = Mutex<[Heard]>([])
        }

        let port: Int
        private let heard = Log()
        private let group: ServiceGroup
        private let task: Task<Void, any Error>

        /// `answer(n)` is the status of the n-th request (0-based); `delay` holds each answer.
        init(
            port: Int? = nil, delay: Duration = .zero, location: String? = nil,
            answer: @escaping @Sendable (Int) -> HTTPResponse.Status = { _ in .ok }
        ) async throws {
            let heard = self.heard
            let router = Router()
            router.post("**") { request, _ -> Response in
                let body = String(buffer: try await request.body.collect(upTo: 1 << 20))
                let index = heard.list.withLock { list in
                    list.append(
                        Heard(
                            eventId: request.headers[HTTPField.Name("ExamBell-Event-Id")!],
                            signature: request.headers[HTTPField.Name("ExamBell-Signature")!], body: body
                        )
                    )
                    return list.count - 1
                }
                if delay > .zero { try await Task.sleep(for: delay) }
                var headers = HTTPFields()
                if let location { headers[.location] = location }
                return Response(
                    status: answer(index), headers: headers, body: .init(byteBuffer: ByteBuffer(string: String(repeating: "x", count: 5000))))
            }
            let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
            var logger = Logger(label: "receiver")
            logger.logLevel = .critical
            let app = Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: port ?? 0)),
                onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) }, logger: logger
            )
            let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: logger))
            self.group = group
            self.task = Task { try await group.run() }
            var iterator = stream.makeAsyncIterator()
            self.port = await iterator.next() ?? 0
        }

        var url: String { "http://127.0.0.1:\(port)/hooks" }
        var requests: [Heard] { heard.list.withLock { $0 } }

        /// The bodies' parsed JSON, in arrival order.
        var events: [[String: Any]] {
            requests.compactMap { try? JSONSerialization.jsonObject(with: Data($0.body.utf8)) as? [String: Any] }
        }

        func stop() async {
            await group.triggerGracefulShutdown()
            _ = await task.result
        }
    }

    struct Registered: Decodable {
        var webhookId: String
        var url: String
        var events: [String]
        var secret: String
    }

    struct Deliveries: Decodable {
        struct Delivery: Decodable {
            var eventId: String
            var type: String
            var attempts: Int
            var lastStatus: Int?
            var deliveredAt: String?
        }
        var deliveries: [Delivery]
    }

    static func register(_ client: some TestClientProtocol, url: String, events: [String]) async throws -> Registered {
        let list = events.map { "\"\($0)\"" }.joined(separator: ",")
        let response = try await client.call(.post, "/api/webhooks", json: #"{"url":"\#(url)","events":[\#(list)]}"#)
        #expect(response.status == .created, "\(String(buffer: response.body))")
        return try decode(Registered.self, response)
    }

    static let allTypes = WebhookEventType.allCases.map(\.rawValue)
}
