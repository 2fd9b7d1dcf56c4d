import ArgumentParser
import ExamBellClient
import ExamBellCore
import ExamBellHTTP
import ExamBellRuntime
import ExamBellServer
import ExamBellWeb
import Foundation
import Hummingbird
import Logging

/// `exambell serve`: everything in one process — web server, socket server, admin console,
/// with the embedded SQLite DB and the in-process memory engine unless told otherwise.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run ExamBell in one process: web API, socket server and admin console (default port 8080)."
    )

    @OptionGroup var options: ServerOptions

    @Flag(help: "Create and start a demo exam, and print its candidate and proctor page URLs.")
    var demo = false

    func run() async throws {
        try await NodeRunner.run(options: options, roles: .all, defaultPort: 8080, demo: demo)
    }
}

/// Runs one ExamBell process with the given roles: `serve` (all), `web`, `socket`.
enum NodeRunner {
    static func run(options: ServerOptions, roles: ExamBellConfiguration.Roles, defaultPort: Int, demo: Bool) async throws {
        // Options that can be wrong are read before anything is opened or made.
        let platformOrigins: Set<String>
        let webhookAllowed: [CIDR]
        do {
            platformOrigins = try ExamBellConfiguration.platformOrigins(options.resolvedAllowedOrigins)
            webhookAllowed = try WebhookTargets.parseAllowed(options.resolvedWebhookAllow)
        } catch {
            throw ValidationError(error.message)
        }
        let webhookRetry = try options.resolvedWebhookRetry()
        raiseOpenFileLimit()  // a socket node holds up to --max-connections browsers
        await primeDispatch()  // while descriptors are left: Dispatch traps when it cannot open its own
        var logger = Logger(label: "exambell")
        logger.logLevel = environment("EXAMBELL_LOG_LEVEL").flatMap(Logger.Level.init(rawValue:)) ?? .info
        // The admin server alone never touches the DB or Redis.
        let backends: ExamBellBackends? = roles == .admin ? nil : try await Backends.open(options, logger: logger)

        var adminToken = options.resolvedAdminToken
        var sessionSecret = options.resolvedSessionSecret
        var tokenWasMade = false
        // Each role holds only the secrets it uses: the admin server none (it passes the
        // operator's token on), a socket node the session secret only, a web node both.
        if roles == .admin {
            adminToken = nil
            sessionSecret = sessionSecret ?? ""
        } else if roles == .socket {
            if adminToken != nil {
                logger.notice("a socket node does not use the admin token; it was given one and ignores it")
                adminToken = nil
            }
            guard sessionSecret != nil else {
                throw ValidationError(
                    "A socket node needs the web nodes' --session-secret (EXAMBELL_SESSION_SECRET, 32+ characters) "
                        + "to check browser session tokens."
                )
            }
        } else if roles != .all {
            // Split nodes must share their secrets; a node-local one would lock the others out.
            guard adminToken != nil, sessionSecret != nil else {
                throw ValidationError(
                    "A web node needs --admin-token and the --session-secret (32+ characters) its socket nodes share "
                        + "(EXAMBELL_ADMIN_TOKEN, EXAMBELL_SESSION_SECRET)."
                )
            }
        } else if adminToken == nil || sessionSecret == nil {
            let secrets = try LocalSecrets.loadOrCreate(in: options.resolvedDataDir)
            tokenWasMade = adminToken == nil
            adminToken = adminToken ?? secrets.adminToken
            sessionSecret = sessionSecret ?? secrets.sessionSecret
        }
        if roles != .admin, let secret = sessionSecret, secret.utf8.count < SessionTokens.minimumSecretLength {
            throw ValidationError(
                "--session-secret (EXAMBELL_SESSION_SECRET) must be at least \(SessionTokens.minimumSecretLength) characters: "
                    + "it signs every browser session (HS256)."
            )
        }
        let host = options.resolvedHost
        let port = try options.resolvedPort(default: defaultPort)
        let shownHost = host == "0.0.0.0" || host == "::" ? "127.0.0.1" : host
        let webURL = options.resolvedWebURL ?? "http://\(shownHost):\(port)"
        var configuration = ExamBellConfiguration(
            adminToken: adminToken, sessionSecret: sessionSecret!, publicWebURL: webURL,
            publicSocketURL: options.resolvedPublicSocketURL ?? "ws://\(shownHost):\(port)/ws"
        )
        configuration.host = host
        configuration.port = port
        configuration.nodeId = options.givenNodeId ?? ServerOptions.defaultNodeId(port: port)
        configuration.metricsToken = options.resolvedMetricsToken
        configuration.platformOrigins = platformOrigins
        configuration.webhookTargets = WebhookTargets(allowed: webhookAllowed)
        configuration.webhookRetryFor = webhookRetry
        if roles.contains(.socket) {
            logger.info("socket node id (its consumer group)", metadata: ["nodeId": "\(configuration.nodeId)"])
        }
        configuration.syncInterval = try options.seconds(options.syncInterval, env: "EXAMBELL_SYNC_INTERVAL", default: 30)
        configuration.syncWindow = try options.seconds(options.syncWindow, env: "EXAMBELL_SYNC_WINDOW", default: 600)
        configuration.maxConnections = options.maxConnections ?? environment("EXAMBELL_MAX_CONNECTIONS").flatMap(Int.init) ?? 19_000
        guard configuration.maxConnections > 0 else { throw ValidationError("--max-connections must be positive.") }
        let grace = options.answerGrace ?? environment("EXAMBELL_ANSWER_GRACE").flatMap(Int.init) ?? 10
        guard (0...3600).contains(grace) else { throw ValidationError("--answer-grace must be 0 to 3600 seconds.") }
        configuration.answerGraceSeconds = grace
        configuration.sessionCloseAfter = try options.seconds(options.sessionCloseAfter, env: "EXAMBELL_SESSION_CLOSE_AFTER", default: 3600)
        guard configuration.sessionCloseAfter.components.seconds > grace else {
            throw ValidationError(
                "--session-close-after (\(configuration.sessionCloseAfter.components.seconds) s) must be longer than --answer-grace (\(grace) s): "
                    + "answers still in flight after the end need their session."
            )
        }
        if let proxies = options.trustedProxies ?? environment("EXAMBELL_TRUSTED_PROXIES") {
            do {
                configuration.connectionLimits.trustedProxies = try TrustedProxies(proxies.split(separator: ",").map(String.init))
            } catch {
                throw ValidationError("--trusted-proxies: \(error.message)")
            }
        }
        if let perAddress = options.maxConnectionsPerAddress ?? environment("EXAMBELL_MAX_CONNECTIONS_PER_ADDRESS").map({ Int($0) ?? 0 }) {
            guard perAddress > 0 else { throw ValidationError("--max-connections-per-address must be a positive number.") }
            configuration.maxConnectionsPerAddress = perAddress
        }
        configuration.pingInterval = try options.seconds(options.pingInterval, env: "EXAMBELL_PING_INTERVAL", default: 30)
        try options.applyBudgets(to: &configuration)
        configuration.faults = TestFaults.fromEnvironment()

        let (listening, listeningContinuation) = AsyncStream.makeStream(of: Int.self)
        configuration.roles = roles
        let announce: @Sendable (Int) async -> Void = { _ in
            listeningContinuation.yield(0)
            listeningContinuation.finish()
        }
        let adminLaneLine = configuration.adminPort.map { "  Admin lane (operators only): http://\(shownHost):\($0)/admin" }
        let run: @Sendable () async throws -> Void
        if let backends {
            let node = try await buildApplication(configuration: configuration, backends: backends, logger: logger, onServerRunning: announce)
            run = { try await node.run() }
        } else {
            let application = try buildAdminApplication(configuration: configuration, logger: logger, onServerRunning: announce)
            run = { try await application.runService() }
        }
        let client = APIClient(baseURL: URL(string: webURL)!, adminToken: configuration.adminToken ?? "")
        let dataDir = options.resolvedDataDir
        let tokenLine =
            tokenWasMade
            ? "  Log in with the admin token: \(configuration.adminToken ?? "")  (kept in \(dataDir)/secrets.json)"
            : "  Log in with the admin token you set (--admin-token / EXAMBELL_ADMIN_TOKEN)."
        let operatorLine = "  Named operators: exambell operator add NAME --role admin (or add them in the console)."
        enum Part { case server, banner }
        let result: Result<Void, any Error> = await withTaskGroup(of: (Part, Result<Void, any Error>).self) { group in
            group.addTask { (.server, await Result(catching: { try await run() })) }
            group.addTask {
                let banner = await Result(catching: {
                    for await _ in listening { break }
                    try Task.checkCancellation()
                    var lines = ["", "ExamBell (\(roles.summary)) is running on \(host):\(port)."]
                    if roles == .admin {
                        lines += ["  Admin console: http://\(shownHost):\(port)/admin (log in with the web servers' admin token)"]
                    } else if roles.contains(.admin) {
                        lines += ["  Admin console: \(webURL)/admin", tokenLine, operatorLine]
                    }
                    if let adminLaneLine { lines.append(adminLaneLine) }
                    if demo {
                        lines += try await DemoExam.create(client: client)
                    }
                    FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n\n").utf8))
                })
                if case .failure(let error) = banner, !(error is CancellationError) {
                    FileHandle.standardError.write(Data("exambell: \(error)\n".utf8))
                }
                return (.banner, .success(()))
            }
            // The server ends on SIGTERM/SIGINT, or at once when it cannot start (port taken).
            while let (part, result) = await group.next() {
                if part == .server {
                    group.cancelAll()
                    return result
                }
            }
            return .success(())
        }
        try? await backends?.store.shutdown()
        if case .failure(let error) = result {
            if let startup = Self.startupError(error) {
                FileHandle.standardError.write(Data("exambell: \(startup)\n".utf8))
            } else {
                FileHandle.standardError.write(Data("exambell: the server stopped: \(error)\nIs port \(port) on \(host) free?\n".utf8))
            }
            throw ExitCode(1)
        }
    }
}

extension NodeRunner {
    /// A failure to start the node's parts (the database), as opposed to the server's own.
    static func startupError(_ error: any Error) -> StartupError? {
        error as? StartupError
    }
}

extension Result where Failure == any Error {
    /// The result of an async throwing body.
    init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}

extension ServerOptions {
    /// The budgets the options set (`Budgets`, `ConnectionLimits`, the admin lane).
    func applyBudgets(to configuration: inout ExamBellConfiguration) throws {
        if let port = try count(adminPort, env: "EXAMBELL_ADMIN_PORT", option: "admin-port") {
            guard port <= 65535 else { throw ValidationError("--admin-port must be a port number.") }
            configuration.adminPort = port
        }
        if let seconds = try count(headerTimeout, env: "EXAMBELL_HEADER_TIMEOUT", option: "header-timeout") {
            configuration.connectionLimits.headerTimeout = .seconds(Int64(seconds))
        }
        if let seconds = try count(bodyTimeout, env: "EXAMBELL_BODY_TIMEOUT", option: "body-timeout") {
            configuration.connectionLimits.bodyTimeout = .seconds(Int64(seconds))
        }
        if let value = try count(maxOpen, env: "EXAMBELL_MAX_OPEN", option: "max-open") {
            configuration.connectionLimits.maxOpen = value
        }
        if let value = try count(maxOpenPerAddress, env: "EXAMBELL_MAX_OPEN_PER_ADDRESS", option: "max-open-per-address") {
            configuration.connectionLimits.maxOpenPerAddress = value
        }
        if let value = try count(maxPendingPerAddress, env: "EXAMBELL_MAX_PENDING_PER_ADDRESS", option: "max-pending-per-address") {
            configuration.connectionLimits.maxPendingPerAddress = value
        }
        var budgets = configuration.budgets
        if let value = try count(answerSavesPerMinute, env: "EXAMBELL_ANSWER_SAVES_PER_MINUTE", option: "answer-saves-per-minute") {
            budgets.answerSaves = Rate(burst: budgets.answerSaves.burst, perMinute: value)
        }
        if let value = try count(pageCallsPerMinute, env: "EXAMBELL_PAGE_CALLS_PER_MINUTE", option: "page-calls-per-minute") {
            budgets.pageCalls = Rate(burst: budgets.pageCalls.burst, perMinute: value)
        }
        if let value = try count(announcementsPerMinute, env: "EXAMBELL_ANNOUNCEMENTS_PER_MINUTE", option: "announcements-per-minute") {
            budgets.announcements = Rate(burst: budgets.announcements.burst, perMinute: value)
        }
        if let value = try count(changesPerMinute, env: "EXAMBELL_CHANGES_PER_MINUTE", option: "changes-per-minute") {
            budgets.changes = Rate(burst: budgets.changes.burst, perMinute: value)
        }
        if let value = try count(lateBytesPerCandidate, env: "EXAMBELL_LATE_BYTES_PER_CANDIDATE", option: "late-bytes-per-candidate") {
            budgets.lateBytesPerCandidate = value
        }
        if let value = try count(loginFailuresPerName, env: "EXAMBELL_LOGIN_FAILURES_PER_NAME", option: "login-failures-per-name") {
            budgets.loginFailuresPerNameAndAddress.limit = value
        }
        if let value = try count(maxListRows, env: "EXAMBELL_MAX_LIST_ROWS", option: "max-list-rows") {
            budgets.maxListRows = value
            budgets.defaultListRows = min(budgets.defaultListRows, value)
        }
        configuration.budgets = budgets
        // The admin lane keeps its own connection counts, with the public port's clocks.
        configuration.adminConnectionLimits.trustedProxies = configuration.connectionLimits.trustedProxies
        configuration.adminConnectionLimits.headerTimeout = configuration.connectionLimits.headerTimeout
        configuration.adminConnectionLimits.bodyTimeout = configuration.connectionLimits.bodyTimeout
    }
}
