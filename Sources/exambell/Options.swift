import ArgumentParser
import ExamBellServer
import ExamBellWeb
import Foundation

/// Reads an environment variable, treating an empty one as unset.
func environment(_ name: String) -> String? {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
    return value
}

/// The options every server process shares; each has an `EXAMBELL_*` environment variable.
struct ServerOptions: ParsableArguments {
    @Option(help: "Address to listen on (EXAMBELL_HOST; default 127.0.0.1).")
    var host: String?

    @Option(help: "Port to listen on (EXAMBELL_PORT).")
    var port: Int?

    @Option(help: "Folder of the embedded SQLite file (EXAMBELL_DATA_DIR; default ./exambell-data).")
    var dataDir: String?

    @Option(help: "postgres://… or sqlite://PATH (EXAMBELL_DATABASE_URL; default the embedded SQLite file).")
    var database: String?

    @Option(help: "redis://… or redis+sentinel://HOST:PORT,…/MASTER_NAME (EXAMBELL_REDIS_URL; default the in-process memory engine).")
    var redis: String?

    @Option(help: "Bearer token of admin calls (EXAMBELL_ADMIN_TOKEN).")
    var adminToken: String?

    @Option(help: "Key that signs browser session tokens, shared by web and socket nodes (EXAMBELL_SESSION_SECRET).")
    var sessionSecret: String?

    @Option(help: "Where admin and end reach the web server (EXAMBELL_WEB_URL).")
    var webUrl: String?

    @Option(help: "The ws://…/ws that session tokens point browsers to (EXAMBELL_PUBLIC_SOCKET_URL).")
    var publicSocketUrl: String?

    @Option(help: "A socket node's stable name, its consumer group (EXAMBELL_NODE_ID; default socket-HOST-PORT).")
    var nodeId: String?

    @Option(help: "Seconds between final-sync passes (EXAMBELL_SYNC_INTERVAL; default 30).")
    var syncInterval: Int?

    @Option(help: "Seconds after its end an exam stays in final sync's periodic pass (EXAMBELL_SYNC_WINDOW; default 600).")
    var syncWindow: Int?

    @Option(help: "Seconds between WebSocket pings; a browser missing a pong is dropped (EXAMBELL_PING_INTERVAL; default 30).")
    var pingInterval: Int?

    @Option(help: "Seconds after an end during which answer saves already in flight are still taken (EXAMBELL_ANSWER_GRACE; default 10).")
    var answerGrace: Int?

    @Option(help: "Seconds after an exam's end its browser sessions stay open (EXAMBELL_SESSION_CLOSE_AFTER; default 3600).")
    var sessionCloseAfter: Int?

    @Option(help: "Load balancers' IP addresses, comma-separated: their X-Forwarded-For names the client (EXAMBELL_TRUSTED_PROXIES).")
    var trustedProxies: String?

    @Option(help: "Sockets one client address may hold open on a socket node (EXAMBELL_MAX_CONNECTIONS_PER_ADDRESS; default no cap).")
    var maxConnectionsPerAddress: Int?

    @Option(help: "Browsers one socket node holds at most (EXAMBELL_MAX_CONNECTIONS; default 19000).")
    var maxConnections: Int?

    @Option(
        help: "A second port for the operators' and admin API and the console only, with its own connections (EXAMBELL_ADMIN_PORT; default none).")
    var adminPort: Int?

    @Option(help: "Seconds a request's head may take to arrive (EXAMBELL_HEADER_TIMEOUT; default 20).")
    var headerTimeout: Int?

    @Option(help: "Seconds a request's body may take to arrive, read or not (EXAMBELL_BODY_TIMEOUT; default 60).")
    var bodyTimeout: Int?

    @Option(help: "Connections the public port holds in all (EXAMBELL_MAX_OPEN; default the open-file limit less 600).")
    var maxOpen: Int?

    @Option(help: "HTTP connections one client address may hold open (EXAMBELL_MAX_OPEN_PER_ADDRESS; default 4000).")
    var maxOpenPerAddress: Int?

    @Option(help: "Connections of one client address still sending a request head (EXAMBELL_MAX_PENDING_PER_ADDRESS; default 1000).")
    var maxPendingPerAddress: Int?

    @Option(help: "Answer saves per candidate per minute, 20 at once (EXAMBELL_ANSWER_SAVES_PER_MINUTE; default 120).")
    var answerSavesPerMinute: Int?

    @Option(help: "Other page calls per session per minute, 60 at once (EXAMBELL_PAGE_CALLS_PER_MINUTE; default 240).")
    var pageCallsPerMinute: Int?

    @Option(help: "Announcements per sender per minute, 5 at once (EXAMBELL_ANNOUNCEMENTS_PER_MINUTE; default 3).")
    var announcementsPerMinute: Int?

    @Option(help: "Time changes and single ends per operator per minute, 30 at once (EXAMBELL_CHANGES_PER_MINUTE; default 30).")
    var changesPerMinute: Int?

    @Option(help: "Bytes of late submissions kept per candidate (EXAMBELL_LATE_BYTES_PER_CANDIDATE; default 262144).")
    var lateBytesPerCandidate: Int?

    @Option(help: "Failed logins for one name from one address in 15 minutes (EXAMBELL_LOGIN_FAILURES_PER_NAME; default 5).")
    var loginFailuresPerName: Int?

    @Option(help: "Rows a list call returns at most (EXAMBELL_MAX_LIST_ROWS; default 500).")
    var maxListRows: Int?

    @Option(help: "When set, /metrics answers only Authorization: Bearer <this> (EXAMBELL_METRICS_TOKEN; default open).")
    var metricsToken: String?

    @Option(
        name: .customLong("allowed-origin"),
        help: "An origin whose pages may load the SDK, call the browser API and open sockets; repeatable (EXAMBELL_ALLOWED_ORIGINS, comma-separated)."
    )
    var allowedOrigins: [String] = []

    @Option(
        name: .customLong("webhook-allow"),
        help:
            "Only these address blocks (CIDR) may receive webhooks; repeatable (EXAMBELL_WEBHOOK_ALLOW, comma-separated; default: any but link-local and metadata addresses)."
    )
    var webhookAllow: [String] = []

    @Option(help: "Hours a failing webhook delivery is retried before it is given up (EXAMBELL_WEBHOOK_RETRY_HOURS; default 24).")
    var webhookRetryHours: Double?

    /// `--webhook-allow` values, or else `EXAMBELL_WEBHOOK_ALLOW`.
    var resolvedWebhookAllow: [String] {
        if !webhookAllow.isEmpty { return webhookAllow }
        return (environment("EXAMBELL_WEBHOOK_ALLOW") ?? "").split(separator: ",").map(String.init).filter { !$0.isEmpty }
    }

    /// `--webhook-retry-hours`, or else `EXAMBELL_WEBHOOK_RETRY_HOURS`, as a duration.
    func resolvedWebhookRetry() throws -> Duration {
        let hours = webhookRetryHours ?? environment("EXAMBELL_WEBHOOK_RETRY_HOURS").flatMap(Double.init) ?? 24
        guard hours > 0, hours <= 24 * 30 else {
            throw ValidationError("--webhook-retry-hours (EXAMBELL_WEBHOOK_RETRY_HOURS) must be more than 0 and at most 720.")
        }
        return .milliseconds(Int64(hours * 3_600_000))
    }

    /// `--allowed-origin` values, or else `EXAMBELL_ALLOWED_ORIGINS`.
    var resolvedAllowedOrigins: [String] {
        if !allowedOrigins.isEmpty { return allowedOrigins }
        return (environment("EXAMBELL_ALLOWED_ORIGINS") ?? "").split(separator: ",").map(String.init).filter { !$0.isEmpty }
    }

    var resolvedHost: String { host ?? environment("EXAMBELL_HOST") ?? "127.0.0.1" }

    func resolvedPort(default value: Int) throws -> Int {
        if let port { return port }
        guard let text = environment("EXAMBELL_PORT") else { return value }
        guard let port = Int(text), (0...65535).contains(port) else {
            throw ValidationError("EXAMBELL_PORT must be a port number, not \(text).")
        }
        return port
    }

    var resolvedDataDir: String { dataDir ?? environment("EXAMBELL_DATA_DIR") ?? "./exambell-data" }
    var resolvedDatabase: String? { database ?? environment("EXAMBELL_DATABASE_URL") }
    var resolvedRedis: String? { redis ?? environment("EXAMBELL_REDIS_URL") }
    var resolvedAdminToken: String? { adminToken ?? environment("EXAMBELL_ADMIN_TOKEN") }
    var resolvedMetricsToken: String? { metricsToken ?? environment("EXAMBELL_METRICS_TOKEN") }
    var resolvedSessionSecret: String? { sessionSecret ?? environment("EXAMBELL_SESSION_SECRET") }
    var resolvedWebURL: String? { webUrl ?? environment("EXAMBELL_WEB_URL") }
    var resolvedPublicSocketURL: String? { publicSocketUrl ?? environment("EXAMBELL_PUBLIC_SOCKET_URL") }
    /// The node id given, if any (see `defaultNodeId` for the one made otherwise).
    var givenNodeId: String? { nodeId ?? environment("EXAMBELL_NODE_ID") }

    /// A socket node's id when none is given: `socket-HOST-PORT`. Two processes on one host
    /// cannot listen on one port, and hosts differ in name, so two nodes never share a
    /// consumer group by accident; the same node restarted on its port keeps its group and
    /// replays what it had taken but not broadcast.
    static func defaultNodeId(port: Int) -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        let safe = String(host.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "-" })
        // Port 0 picks a free port at bind time: the process id keeps such nodes apart.
        let place = port == 0 ? "pid\(ProcessInfo.processInfo.processIdentifier)" : String(port)
        return "socket-\(safe.isEmpty ? "host" : safe)-\(place)"
    }

    /// A positive count from its option or environment variable, or nil when neither is set.
    func count(_ value: Int?, env: String, option: String) throws -> Int? {
        guard let count = value ?? environment(env).map({ Int($0) ?? 0 }) else { return nil }
        guard count > 0 else { throw ValidationError("--\(option) (\(env)) must be a positive number.") }
        return count
    }

    func seconds(_ value: Int?, env: String, default fallback: Int) throws -> Duration {
        let seconds = value ?? environment(env).flatMap(Int.init) ?? fallback
        guard seconds > 0 else { throw ValidationError("\(env) must be a positive number of seconds.") }
        return .seconds(seconds)
    }
}
