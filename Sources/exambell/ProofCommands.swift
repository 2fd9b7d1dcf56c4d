import ArgumentParser
import ExamBellProof
import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// `exambell audit verify FILE [--head HASH]`: checks an exported audit chain
/// (`GET /api/exams/{examId}/audit?format=jsonl`) without asking ExamBell. Exit 0 when it
/// holds, 1 naming the first broken row.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Check an exam's exported audit chain.", subcommands: [Verify.self]
    )

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a JSON-lines audit export: exit 0 when the chain holds, 1 with the first broken row."
        )

        @Argument(help: "The export (`…/audit?format=jsonl`), or - for standard input.")
        var file: String

        @Option(help: "The head hash written down at the end of the day: the chain must end there.")
        var head: String?

        func run() async throws {
            let text = try ProofInput.read(file)
            let verdict = AuditChain.verify(jsonl: text, head: head)
            if let problem = verdict.problem {
                ProofInput.fail("audit chain broken: \(problem)")
            }
            print("audit chain holds: \(verdict.rows) rows, head \(verdict.head ?? "(empty)")")
        }
    }
}

/// Reading evidence files and failing with exit status 1 (not ArgumentParser's 64).
enum ProofInput {
    static func read(_ path: String) throws -> String {
        let data: Data
        do {
            data = path == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ValidationError("cannot read \(path): \(error.localizedDescription)")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw ValidationError("\(path) is not UTF-8 text") }
        return text
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        exit(1)
    }
}

/// `exambell verify RECEIPT [--keys URL_OR_FILE]`: checks a receipt's signature against the
/// deployment's published keys (`GET /api/receipt-keys`, or that answer saved as a file).
/// Exit 0 when it holds, 1 naming the field that was changed.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify", abstract: "Check a receipt's signature: exit 0 when it holds, 1 naming what was changed."
    )

    @Argument(help: "The receipt file (as downloaded from the page or GET /api/receipt), or - for standard input.")
    var file: String

    @Option(help: "The deployment's keys: https://…/api/receipt-keys, or that answer saved as a file.")
    var keys: String

    func run() async throws {
        let receipt: JSONValue
        do {
            receipt = try JSONValue.parse(try ProofInput.read(file))
        } catch let error as ValidationError {
            throw error
        } catch {
            ProofInput.fail("receipt does not hold: \(file) is not JSON")
        }
        let published = try await Self.loadKeys(keys)
        let verdict = ReceiptSigner.verify(receipt, keys: published)
        guard verdict.holds else { ProofInput.fail("receipt does not hold: \(verdict.message)") }
        print(verdict.message)
    }

    static func loadKeys(_ place: String) async throws -> [ReceiptKey] {
        let text: String
        if place.hasPrefix("http://") || place.hasPrefix("https://") {
            guard let url = URL(string: place) else { throw ValidationError("--keys \(place) is not a URL") }
            do {
                let (data, response) = try await URLSession.shared.data(from: url)
                guard (response as? HTTPURLResponse)?.statusCode == 200 else {
                    throw ValidationError("--keys \(place) answered \((response as? HTTPURLResponse)?.statusCode ?? 0)")
                }
                text = String(decoding: data, as: UTF8.self)
            } catch let error as ValidationError {
                throw error
            } catch {
                throw ValidationError("cannot fetch the keys from \(place): \(error.localizedDescription)")
            }
        } else {
            text = try ProofInput.read(place)
        }
        struct Keys: Decodable { var keys: [ReceiptKey] }
        guard let keys = try? JSONDecoder().decode(Keys.self, from: Data(text.utf8)) else {
            throw ValidationError("--keys \(place) is not {\"keys\":[{\"keyId\",\"alg\",\"publicKey\"}]}")
        }
        return keys.keys
    }
}
