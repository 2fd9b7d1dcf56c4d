import ArgumentParser
import ExamBellCore
import ExamBellRuntime
import ExamBellSQL
import ExamBellServer
import ExamBellWeb
import Foundation

/// `exambell operator add|list|disable`: operator accounts, straight in the DB the server
/// uses (`--database`, or the embedded SQLite file under `--data-dir`), so the first admin
/// can be made before any server runs. The password is read from standard input.
struct OperatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "operator", abstract: "Add, list or disable named operators (in the DB the server uses).",
        subcommands: [Add.self, List.self, Disable.self]
    )

    /// Where the DB is: the same options and environment as the servers'.
    struct Place: ParsableArguments {
        @Option(help: "Folder of the embedded SQLite file (EXAMBELL_DATA_DIR; default ./exambell-data).")
        var dataDir: String?

        @Option(help: "postgres://… or sqlite://PATH (EXAMBELL_DATABASE_URL; default the embedded SQLite file).")
        var database: String?

        func withStore<R: Sendable>(_ body: (SQLExamStore) async throws -> R) async throws -> R {
            let store: SQLExamStore
            switch database ?? environment("EXAMBELL_DATABASE_URL") {
            case nil:
                let directory = dataDir ?? environment("EXAMBELL_DATA_DIR") ?? "./exambell-data"
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                store = try await SQLiteExamStore.open(path: URL(fileURLWithPath: directory).appendingPathComponent("exambell.sqlite").path)
            case let url? where url.hasPrefix("sqlite://"):
                store = try await SQLiteExamStore.open(path: String(url.dropFirst("sqlite://".count)))
            case let url? where url.hasPrefix("postgres://") || url.hasPrefix("postgresql://"):
                // The pool runs in the call's task group and stops with it.
                return try await PostgresExamStore.withStore(url: url, body)
            case let url?:
                throw ValidationError("--database must be postgres://… or sqlite://PATH, not \(url.prefix(12))….")
            }
            do {
                let result = try await body(store)
                try? await store.shutdown()
                return result
            } catch {
                try? await store.shutdown()
                throw error
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add an operator; its password is read from standard input (one line).")
        @Argument(help: "The operator's name (^[A-Za-z0-9_.-]{1,64}$).") var name: String
        @Option(help: "admin, operator or viewer.") var role: String
        @OptionGroup var place: Place

        func run() async throws {
            if isatty(STDIN_FILENO) != 0 { FileHandle.standardError.write(Data("Password for \(name) (10 to 72 bytes): ".utf8)) }
            guard let password = readLine(strippingNewline: true), !password.isEmpty else {
                throw ValidationError("Give the password on standard input, e.g. printf '%s\\n' \"$PASSWORD\" | exambell operator add …")
            }
            try await report {
                let account = try await place.withStore { store in
                    try await Passwords.withPasswords { passwords in
                        try await OperatorAdmin.add(name: name, password: password, role: role, store: store, passwords: passwords)
                    }
                }
                print("Operator \(account.name) added as \(account.role.rawValue).")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List operators.")
        @OptionGroup var place: Place

        func run() async throws {
            try await report {
                let accounts = try await place.withStore { try await $0.operators() }
                if accounts.isEmpty { print("No operators yet: exambell operator add NAME --role admin") }
                for account in accounts {
                    let state = account.disabled ? "disabled" : "active"
                    print("\(account.name)\t\(account.role.rawValue)\t\(state)\tsince \(account.createdAt.iso8601)")
                }
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable an operator: its sessions end and its API tokens stop working.")
        @Argument(help: "The operator's name.") var name: String
        @OptionGroup var place: Place

        func run() async throws {
            try await report {
                let account = try await place.withStore { try await $0.disableOperator(named: name) }
                print("Operator \(account.name) is disabled.")
            }
        }
    }
}

/// Prints a refused change as one line (code and message) and exits 1.
private func report(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExamBellError {
        FileHandle.standardError.write(Data("exambell operator: \(error.message) (\(error.code))\n".utf8))
        throw ExitCode(1)
    } catch let error as StoreError {
        FileHandle.standardError.write(Data("exambell operator: \(error.message) (\(error.code))\n".utf8))
        throw ExitCode(1)
    }
}
