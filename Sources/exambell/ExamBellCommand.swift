import ArgumentParser
import ExamBellBench

/// `exambell`: ends a computer-based exam for everyone in it, at once and consistently.
@main
struct ExamBellCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exambell",
        abstract: "Ends a computer-based exam for every candidate and proctor at once.",
        subcommands: [
            Serve.self, WebCommand.self, SocketCommand.self, AdminCommand.self, End.self, OperatorCommand.self, Bench.self, BenchFloor.self,
            BenchClient.self, WebhookCommand.self, AuditCommand.self, VerifyCommand.self,
        ],
        defaultSubcommand: Serve.self
    )
}
