import ArgumentParser
import ExamBellServer
import ExamBellWeb
import Foundation
import Hummingbird
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// `exambell webhook listen --secret S [--port P]`: receives ExamBell's webhooks, checks each
/// signature, prints each event (one JSON line) on standard output and each refusal on
/// standard error.
struct WebhookCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhook", abstract: "Tools for webhook receivers.", subcommands: [Listen.self]
    )

    struct Listen: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Receive webhooks, check their signatures and print each event (one JSON line)."
        )

        @Option(help: "The endpoint's secret (whsec_…; EXAMBELL_WEBHOOK_SECRET).")
        var secret: String?

        @Option(help: "Port to listen on (0 for any free one; default 9000).")
        var port: Int = 9000

        @Option(help: "Address to listen on (default 127.0.0.1).")
        var host: String = "127.0.0.1"

        func run() async throws {
            guard let secret = secret ?? environment("EXAMBELL_WEBHOOK_SECRET"), !secret.isEmpty else {
                throw ValidationError("webhook listen needs --secret (EXAMBELL_WEBHOOK_SECRET): the endpoint's secret.")
            }
            var logger = Logger(label: "exambell-webhook-listen")
            logger.logLevel = .warning
            let app = WebhookListener.application(
                secret: secret, host: host, port: port, logger: logger,
                heard: { heard in
                    switch heard {
                    case .event(let body):
                        FileHandle.standardOutput.write(Data("\(body)\n".utf8))
                    case .refused(let why):
                        FileHandle.standardError.write(Data("\(why)\n".utf8))
                    }
                },
                onServerRunning: { port in
                    FileHandle.standardError.write(Data("listening on http://\(host):\(port)/ (signatures checked)\n".utf8))
                }
            )
            try await app.runService()
        }
    }
}
