import ExamBellCore
import ExamBellHTTP
import ExamBellRuntime
import ExamBellWeb
import Foundation
import ServiceLifecycle

/// Everything a node needs to know that is not a backend: where it listens, its secrets,
/// its public URLs and the timings of its background work.
public struct ExamBellConfiguration: Sendable {
    /// Which parts of ExamBell this process runs.
    public struct Roles: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// The web server (시행 서버): JSON API, outbox relay, final sync.
        public static let web = Roles(rawValue: 1)
        /// The socket server (소켓 서버): `/ws`, queue consumer, presence.
        public static let socket = Roles(rawValue: 2)
        /// The admin console (관리 서버 UI) at `/admin`.
        public static let admin = Roles(rawValue: 4)
        public static let all: Roles = [.web, .socket, .admin]

        /// Like `web server + socket server + admin console`.
        public var summary: String {
            [(Roles.web, "web server"), (.socket, "socket server"), (.admin, "admin console")]
                .filter { contains($0.0) }.map(\.1).joined(separator: " + ")
        }
    }

    public var roles: Roles = .all
    public var host = "127.0.0.1"
    public var port = 8080
    /// Bearer token of admin calls; only web nodes hold it (a socket node never needs it).
    public var adminToken: String?
    /// Key that signs browser session tokens (shared by web and socket nodes).
    public var sessionSecret: String
    /// Where browsers and tools reach the web server, like `http://127.0.0.1:8080`.
    public var publicWebURL: String
    /// The `ws://…/ws` that session tokens point browsers to.
    public var publicSocketURL: String
    /// A socket node's stable name: its consumer group.
    public var nodeId = "socket-1"
    /// How long a browser session token stays valid.
    public var sessionLifetime: Duration = .seconds(12 * 3600)
    /// How long after its exam's end a browser session stays open (the ended screen, a
    /// reload, answers in flight); later its token is refused with 401 `session_closed`.
    /// Longer than the answer grace window.
    public var sessionCloseAfter: Duration = .seconds(3600)
    /// When set, `/metrics` answers only `Authorization: Bearer <this>`.
    public var metricsToken: String?
    /// Connections one browser session token may hold open on a socket node (a reload, a second tab).
    public var maxConnectionsPerSession = 3
    /// Sockets one client address may hold open on a socket node; nil (the default) for no
    /// cap: an exam hall behind one NAT address holds hundreds, and behind a load balancer
    /// not listed in `connectionLimits.trustedProxies` every browser has its address.
    public var maxConnectionsPerAddress: Int?
    /// Origins of a platform's own pages (`--allowed-origin`, lowercased `scheme://host[:port]`):
    /// they may load the browser SDK, call the browser API (CORS, preflight included) and
    /// open sockets. Empty by default: only ExamBell's own pages.
    public var platformOrigins: Set<String> = []

    /// `--allowed-origin` values as origins; 400 `invalid_origin` naming the first that is none.
    public static func platformOrigins(_ values: [String]) throws(ExamBellError) -> Set<String> {
        var origins: Set<String> = []
        for value in values { origins.insert(try OriginPolicy.platformOrigin(value)) }
        return origins
    }

    /// Origins whose pages may open browsers' sockets and call the API, besides the one each
    /// request was sent to (when it is a host this node serves): the public web URL's, and
    /// the platforms'.
    public var allowedOrigins: Set<String> {
        guard let url = URL(string: publicWebURL), let scheme = url.scheme?.lowercased(), let host = url.host?.lowercased() else {
            return platformOrigins
        }
        return platformOrigins.union(["\(scheme)://\(host)\(url.port.map { ":\($0)" } ?? "")"])
    }

    /// `allowedOrigins`, and the hosts of the public URLs as the hosts this node serves.
    var originPolicy: OriginPolicy {
        OriginPolicy(allowedOrigins: allowedOrigins, servedURLs: [publicWebURL, publicSocketURL], crossOrigins: platformOrigins)
    }
    /// What each principal may spend (answers, announcements, logins, list rows, …).
    public var budgets = Budgets()
    /// What a connection must do before its first request head: arrive within 20 s, fit in
    /// 16 KiB, and be one of at most 1,000 such connections from its address.
    public var connectionLimits = ConnectionLimits()
    /// A second listener for the operators' and admin API and the console only (on `web` and
    /// `serve` nodes), with its own connections: a flood of the public port never delays an
    /// end, a time change or a login sent here. nil: none.
    public var adminPort: Int?
    /// The admin lane's own connection budgets: 256 in all, 64 per address.
    public var adminConnectionLimits: ConnectionLimits = {
        var limits = ConnectionLimits()
        limits.maxOpen = 256
        limits.maxOpenPerAddress = 64
        limits.maxPendingPerAddress = 32
        return limits
    }()
    /// How long an operator's console login lasts.
    public var consoleSessionLifetime: Duration = .seconds(12 * 3600)
    /// Logins whose password is being checked (bcrypt, ~0.25 s of CPU each) or waiting for a
    /// thread at once; one more gets 503 `busy` (32: a few seconds of work on two cores).
    public var maxLoginsChecking = 32
    /// How long an outbox row stays with the node that committed it before a relay takes it.
    public var outboxLease: Duration = .seconds(5)
    /// How often the outbox relay looks for unpublished rows.
    public var outboxInterval: Duration = .seconds(1)
    /// Webhooks: where they may go (`--webhook-allow`) and how long a failing delivery is
    /// retried (`--webhook-retry-hours`, at least 24 h by default).
    public var webhookTargets = WebhookTargets()
    public var webhookRetryFor: Duration = .seconds(24 * 3600)
    /// How often a web node looks for webhook deliveries that are due.
    public var webhookInterval: Duration = .milliseconds(250)
    /// How often a web node looks for exams whose planned end has come.
    public var schedulerInterval: Duration = .seconds(1)
    /// How often final sync reconciles Redis and the DB.
    public var syncInterval: Duration = .seconds(30)
    /// How long after its end an exam stays in final sync's periodic pass (older ones only
    /// when a sync of theirs failed or found drift).
    public var syncWindow: Duration = .seconds(600)
    /// How long after an end's broadcast its exam is reconciled (time for the browsers' acks
    /// to arrive); nil for no sync of its own beyond the periodic one.
    public var syncAfterEnd: Duration? = .seconds(5)
    /// On a node running both roles, how long an end's bookkeeping waits at most for this
    /// node's hub to have written the end to its browsers (`FanOutHandOff`).
    public var endHandOffBound: Duration = .seconds(1)
    /// How often a socket node pings browsers; one that misses a pong is dropped.
    public var pingInterval: Duration = .seconds(30)
    /// How often a socket node refreshes its presence in the state store.
    public var presenceInterval: Duration = .seconds(1)
    /// Seconds after an exam's end during which answer saves already in flight are still
    /// taken (and audited as late); later ones are refused with 409.
    public var answerGraceSeconds = 10
    /// Maximum request body, in bytes: room for the largest bulk request DESIGN allows
    /// (10,000 candidates with 64-character ids and names, `\u`-escaped by most clients).
    public var maxBodySize = 4 << 20
    /// Browsers one socket node holds at most; one more is refused with 503 (a process may
    /// hold about 19,900 sockets on these machines).
    public var maxConnections = 19_000
    /// Maximum candidates, proctors or session ids in one request.
    public var maxBatch = 10_000
    /// Connections the kernel queues for the server before it accepts them. When a socket
    /// node restarts, its browsers all come back within about a second; a queue that
    /// overflows drops their handshakes, and each waits a minute or more in a connection the
    /// node never accepted (seen with the default of 256 and 1,000 browsers on a loaded
    /// machine). Linux caps it at `net.core.somaxconn` (4096 on Debian 12).
    public var listenBacklog = 4096
    /// Where crash tests stop or hold this node; none in the product.
    public var faults = FaultPoints.none

    public init(adminToken: String?, sessionSecret: String, publicWebURL: String, publicSocketURL: String) {
        self.adminToken = adminToken
        self.sessionSecret = sessionSecret
        self.publicWebURL = publicWebURL
        self.publicSocketURL = publicSocketURL
    }
}

/// The backends a node runs on: the DB, the state store and the queue's two streams
/// (`queue:exam_end`, `queue:exam_events`, on the same engine), and where their
/// failed calls are counted (the stores were opened with the same `failures`).
public struct ExamBellBackends: Sendable {
    public var store: any ExamStore
    public var state: any StateStore
    public var queue: any ExamEndQueue
    /// `queue:exam_events`: time changes, single candidates' ends, announcements.
    public var events: any ExamEndQueue
    public var failures: BackendFailures
    /// What the backends need running (PostgreSQL's pool, the Redis client's connections):
    /// the node runs them first in its service group, so they stop last.
    public var services: [any Service]
    /// Work before the node's server starts (the DB's migrations), once those services run.
    public var prepare: (@Sendable () async throws -> Void)?

    public init(
        store: any ExamStore, state: any StateStore, queue: any ExamEndQueue, events: any ExamEndQueue,
        failures: BackendFailures = BackendFailures(),
        services: [any Service] = [], prepare: (@Sendable () async throws -> Void)? = nil
    ) {
        self.store = store
        self.state = state
        self.queue = queue
        self.events = events
        self.failures = failures
        self.services = services
        self.prepare = prepare
    }
}

extension RequestSettings {
    /// What the node's request handlers read of its configuration.
    init(_ configuration: ExamBellConfiguration) {
        self.init(
            maxBodySize: configuration.maxBodySize, maxBatch: configuration.maxBatch, budgets: configuration.budgets,
            answerGraceSeconds: configuration.answerGraceSeconds, publicSocketURL: configuration.publicSocketURL,
            publicWebURL: configuration.publicWebURL
        )
    }
}
