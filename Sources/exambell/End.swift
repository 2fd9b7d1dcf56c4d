import ArgumentParser
import ExamBellClient
import ExamBellCore
import Foundation

/// `exambell end EXAM_ID`: ends an exam through the web server's API and prints the result.
struct End: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "End an exam now, through the web server's API.")

    @Argument(help: "The exam to end.")
    var examId: String

    @Option(help: "Why the exam is ended (kept in the audit log).")
    var reason: String?

    @OptionGroup var client: ClientOptions

    func validate() throws {
        guard Identifier.isValid(examId) else { throw ValidationError("EXAM_ID must match ^[A-Za-z0-9_-]{1,64}$.") }
    }

    func run() async throws {
        struct Result: Decodable {
            var examId: String
            var status: String
            var endDatetime: String
            var result: String
        }
        var body: [String: any Sendable] = [:]
        if let reason { body["reason"] = reason }
        do {
            let result = try await client.client().call("POST", "api/exams/\(examId)/end", body: body, as: Result.self)
            let what = result.result == "completed" ? "ended now" : "had already ended"
            print("Exam \(result.examId) \(what): status \(result.status), end time \(result.endDatetime).")
        } catch let error as ExamBellError {
            FileHandle.standardError.write(Data("exambell end: \(error.message) (\(error.status) \(error.code))\n".utf8))
            throw ExitCode(1)
        }
    }
}
