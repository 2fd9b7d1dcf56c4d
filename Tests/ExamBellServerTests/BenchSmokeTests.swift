import ExamBellTestSupport
import Foundation
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `exambell bench` keeps working: a small run against a real `exambell serve` (no timing
/// is asserted; BENCHMARKS.md holds the numbers).
@Suite("exambell bench (smoke)", .timeLimit(.minutes(10)))
struct BenchSmokeTests {
    func serve(_ directory: URL) async throws -> (TestProcess, Int) {
        let port = try RedisTestServer.freePort()
        let server = TestProcess(
            arguments: [
                try TestProcess.exambellBinary(), "serve", "--port", String(port), "--data-dir", directory.appendingPathComponent("data").path,
                "--admin-token", "smoke-token", "--session-secret", "smoke-session-secret-0123456789abcdef",
            ],
            environment: ["EXAMBELL_LOG_LEVEL": "warning"], logPath: directory.appendingPathComponent("serve.log").path
        )
        try server.start()
        do {
            try await waitHealthy(port: port, "exambell serve")
        } catch {
            throw TestServerError("\(error); its log: \(server.log)")
        }
        return (server, port)
    }

    func bench(_ directory: URL, _ arguments: [String]) async throws -> [String: Any] {
        let output = directory.appendingPathComponent("bench-\(UUID().uuidString).json")
        let process = TestProcess(
            arguments: [try TestProcess.exambellBinary(), "bench", "--json"] + arguments, environment: [:], logPath: output.path)
        try process.start()
        let status = await process.exitStatus(within: .seconds(120))
        #expect(status == 0, "bench exited with \(String(describing: status)): \(process.log)")
        let line = try #require(process.log.split(separator: "\n").last { $0.hasPrefix("{") })
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test("200 browsers of one exam, and 10 exams × 20 ended at once: every browser told, percentiles and memory reported")
    func smoke() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("exambell-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (server, port) = try await serve(directory)
        defer { server.stop() }
        let common = ["--web-url", "http://127.0.0.1:\(port)", "--admin-token", "smoke-token"]
        guard let pid = server.processId else { throw TestServerError("no pid") }
        let one = try await bench(directory, common + ["--browsers", "200", "--server-pid", String(pid), "--history", "2"])
        #expect(one["connected"] as? Int == 200)
        #expect(one["missing"] as? Int == 0)
        #expect((one["p99Ms"] as? Double).map { $0 > 0 && $0 >= (one["p50Ms"] as? Double ?? .infinity) } == true)
        #expect(one["serverKiBPerConnection"] is Double)
        var list = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/api/exams")!)
        list.setValue("Bearer smoke-token", forHTTPHeaderField: "Authorization")
        let exams = String(decoding: try await URLSession.shared.data(for: list).0, as: UTF8.self)
        #expect(exams.components(separatedBy: "-history-").count == 3, "--history 2 ran two earlier exams: \(exams.prefix(300))")
        #expect(exams.components(separatedBy: #""status":"completed""#).count == 4, "the two earlier exams and the measured one ended")
        let burst = try await bench(directory, common + ["--exams", "10", "--browsers", "20"])
        #expect(burst["exams"] as? Int == 10)
        #expect(burst["received"] as? Int == 200)
        // Browsers spread over client processes (and over "socket nodes", here the one node).
        let spread = try await bench(
            directory, common + ["--browsers", "300", "--client-processes", "3", "--socket-url", "ws://127.0.0.1:\(port)"])
        #expect(spread["clientProcesses"] as? Int == 3)
        #expect(spread["connected"] as? Int == 300)
        #expect(spread["missing"] as? Int == 0)
        #expect((spread["p99Ms"] as? Double).map { $0 > 0 } == true)
    }

    @Test("the machine's floor (`exambell bench-floor`) is driven like another server: every subscriber gets the published frame")
    func floor() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("exambell-floor-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let port = try RedisTestServer.freePort()
        let floor = TestProcess(
            arguments: [try TestProcess.exambellBinary(), "bench-floor", "--port", String(port)], environment: [:],
            logPath: directory.appendingPathComponent("floor.log").path
        )
        try floor.start()
        defer { floor.stop() }
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/pub")!)
        request.httpMethod = "POST"
        request.httpBody = Data("ping".utf8)
        request.timeoutInterval = 2
        var listening = false
        var last = "no probe was answered"
        let deadline = ContinuousClock.now + .seconds(30)
        while !listening, ContinuousClock.now < deadline {
            do {
                let (body, response) = try await URLSession.shared.data(for: request)
                let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                if status == 200 {
                    #expect(String(decoding: body, as: UTF8.self) == "published to 0\n")
                    listening = true
                } else {
                    last = "answered \(status)"
                }
            } catch {
                last = "\(error)"
            }
            if !listening { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(listening, "bench-floor did not start within 30 s (\(last)): \(floor.log)")
        let run = try await bench(
            directory,
            ["--ws-url", "ws://127.0.0.1:\(port)/sub", "--publish-url", "http://127.0.0.1:\(port)/pub", "--browsers", "100"]
        )
        #expect(run["connected"] as? Int == 100)
        #expect(run["received"] as? Int == 100)
        #expect(run["missing"] as? Int == 0)
    }
}
