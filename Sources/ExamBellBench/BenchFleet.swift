import ArgumentParser
import AsyncHTTPClient
import ExamBellClient
import ExamBellCore
import Foundation
import Histogram
import NIOPosix
import Synchronization

/// What `exambell bench` drives: the browsers (in process or over client processes), the
/// exams they belong to, and how each exam is ended.
extension Bench {
    /// The browsers: in this process, or spread over client processes.
    enum Fleet: Sendable {
        case local(LoadClient)
        case processes(ClientProcesses)

        func arm() async throws {
            switch self {
            case .local(let load): load.arm()
            case .processes(let children): try await children.arm()
            }
        }

        /// Every browser's stamp (0: never told) once all `opened` were told or 30 s passed,
        /// and the children's CPU seconds.
        func collect(opened: Int) async throws -> ([UInt64], Double) {
            switch self {
            case .local(let load):
                let deadline = ContinuousClock.now + .seconds(30)
                while load.receipts.received < opened, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                return (load.receipts.all, 0)
            case .processes(let children):
                return try await children.collect()
            }
        }

        func shutdown() async {
            switch self {
            case .local(let load): await load.shutdown()
            case .processes(let children): children.shutdown()
            }
        }
    }

    /// What to connect to and how to end it.
    struct Plan: Sendable {
        var urls: [String]
        /// Each exam's browsers, as index ranges of `urls`.
        var groups: [Range<Int>]
        var end: Ender
        var label: String
    }

    /// Fires the end of group `index`.
    enum Ender: Sendable {
        case exams(APIClient, [String])
        case publish(APIClient, URL)

        func fire(_ index: Int) async throws {
            switch self {
            case .exams(let api, let ids):
                struct Ended: Decodable { var result: String }
                _ = try await api.call("POST", "api/exams/\(ids[index])/end", body: ["reason": "benchmark"], as: Ended.self)
            case .publish(let client, let url):
                try await client.post(json: ExamEndSocketMessage(examId: "bench", timestamp: .now()).json, to: url)
            }
        }
    }
}
