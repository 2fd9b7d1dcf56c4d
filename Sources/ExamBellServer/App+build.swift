import AsyncHTTPClient
import ExamBellCore
import ExamBellFlow
import ExamBellHTTP
import ExamBellRuntime
import ExamBellSocket
import ExamBellWeb
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import ServiceLifecycle
import UnixSignals

/// The one place an ExamBell node is assembled, for the executable and the tests alike: the
/// backends are passed in, so `serve` hands in SQLite and the memory engine, the split
/// processes PostgreSQL and Redis, and tests whatever they check. The node it returns runs
/// every long-lived part in its service group (`ExamBellNode.serviceGroup`); tests run its
/// `application` with HummingbirdTesting, which runs the same services.
///
/// Data flow of an end (seed §2): `ExamsController.end` → `EndExamService` (the DB commits,
/// then the state store ∥ the queue through `OutboxRelay.deliver`) → `QueueConsumer` on each
/// socket node → `SocketHub.broadcast` → browsers; `FinalSync` reconciles afterwards and
/// periodically. `onServerRunning` is called with the bound port once the server listens.
public func buildApplication(
    configuration: ExamBellConfiguration, backends: ExamBellBackends, logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
    onAdminLaneRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws -> ExamBellNode {
    try await ExamBellNode(
        configuration: configuration, backends: backends, logger: logger, onServerRunning: onServerRunning,
        onAdminLaneRunning: onAdminLaneRunning)
}

/// A node's parts, reachable by tests that drive a part directly (the relay, final sync).
public struct ExamBellNode: Sendable {
    public let application: Application<RouterResponder<ExamBellRequestContext>>
    /// The admin lane (`--admin-port`): a listener of its own for operators, whatever the
    /// public port is going through; nil without an admin port.
    public let adminLane: Application<RouterResponder<ExamBellRequestContext>>?
    public let hub: SocketHub
    /// The browsers' keep-alive, when the node serves sockets.
    package let pings: PingRounds?
    public let outboxRelay: OutboxRelay
    public let finalSync: FinalSync
    public let sessions: SessionTokens
    public let metrics: NodeMetrics
    let logger: Logger
    let runsSockets: Bool

    /// Assembles a node (through `buildApplication`).
    init(
        configuration: ExamBellConfiguration, backends: ExamBellBackends, logger: Logger,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        onAdminLaneRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        let closing = SessionClosing(
            closeAfter: configuration.sessionCloseAfter, logger: logger,
            lookup: configuration.roles.contains(.web) ? SessionClosing.ends(in: backends.store) : SessionClosing.ends(in: backends.state)
        )
        let sessions = try await SessionTokens(
            secret: configuration.sessionSecret, lifetime: configuration.sessionLifetime, closing: closing,
            sharedTickets: backends.state
        )
        let hub = SocketHub(
            forgetEndedAfter: configuration.sessionCloseAfter, faults: configuration.faults,
            instance: "\(configuration.nodeId)~\(Timestamp.milliseconds())")
        let metrics = NodeMetrics(failures: backends.failures)
        // A node running both roles fans its own ends out: their bookkeeping waits for that.
        let handOff = configuration.roles.isSuperset(of: [.web, .socket]) ? FanOutHandOff() : nil
        let delivery = Delivery(
            store: backends.store, state: backends.state, queue: backends.queue, events: backends.events, logger: logger,
            handOff: handOff, handOffBound: configuration.endHandOffBound)
        let relay = OutboxRelay(
            outbox: backends.store, delivery: delivery, interval: configuration.outboxInterval, lease: configuration.outboxLease,
            logger: logger
        )
        let sync = FinalSync(
            store: backends.store, state: backends.state, interval: configuration.syncInterval, window: configuration.syncWindow,
            closeAfter: configuration.sessionCloseAfter, nodeId: "\(configuration.nodeId)-\(UUID().uuidString.prefix(8))",
            logger: logger, faults: configuration.faults
        )
        let endService = EndExamService(
            store: backends.store, outbox: relay, finalSync: sync,
            syncAfterEnd: configuration.syncAfterEnd, logger: logger, metrics: metrics, faults: configuration.faults
        )
        let examDay = ExamDayService(store: backends.store, outbox: relay, logger: logger)
        let socketServer =
            configuration.roles.contains(.socket)
            ? SocketServer(
                hub: hub, sessions: sessions, state: backends.state, logger: logger, maxConnections: configuration.maxConnections,
                maxConnectionsPerSession: configuration.maxConnectionsPerSession, origins: configuration.originPolicy,
                maxConnectionsPerAddress: configuration.maxConnectionsPerAddress,
                trustedProxies: configuration.connectionLimits.trustedProxies,
                metrics: metrics, pingInterval: .nanoseconds(Int64(configuration.pingInterval.inSeconds * 1e9))
            ) : nil
        // Operators' passwords are checked on the web role only, on threads the node owns.
        let passwords = configuration.roles.contains(.web) ? Passwords() : nil
        // The web role reads an exam's archived hashes from the DB once its state was retired.
        var webBackends = backends
        webBackends.state = ArchivedStateStore(state: backends.state, archive: backends.store)
        let web = try passwords.map { passwords in
            try WebRoutes(
                configuration: configuration, backends: webBackends, sessions: sessions, endService: endService, examDay: examDay, metrics: metrics,
                passwords: passwords)
        }
        let router = try buildRouter(
            configuration: configuration, backends: backends, web: web, metrics: metrics, hub: socketServer == nil ? nil : hub
        )
        socketServer?.addRoutes(to: router)
        let address = BindAddress.hostname(configuration.host, port: configuration.port)
        let guardLimits = configuration.connectionLimits
        let budgets = ConnectionBudgets(maxOpen: guardLimits.openBudget)
        // The backends' own services first: a service group stops its services in reverse
        // order, so the pools outlive every part that uses them.
        var services: [any Service] = backends.services
        // The password threads stop after the HTTP server and before the pools.
        if let passwords { services.append(passwords) }
        var application: Application<RouterResponder<ExamBellRequestContext>>
        if let socketServer {
            application = Application(
                router: router,
                server: HTTPServerBuilder { responder in
                    BrowserChannel(
                        responder: responder, server: socketServer, http1: .init(idleTimeout: .seconds(120)), guardLimits: guardLimits,
                        budgets: budgets)
                },
                configuration: .init(address: address, serverName: "ExamBell", backlog: configuration.listenBacklog),
                onServerRunning: { await onServerRunning($0.localAddress?.port ?? configuration.port) },
                logger: logger
            )
            services.append(
                QueueConsumer(
                    queue: backends.queue, state: backends.state, hub: hub, group: configuration.nodeId, logger: logger, metrics: metrics,
                    faults: configuration.faults, handOff: handOff
                )
            )
            services.append(
                QueueConsumer(
                    queue: backends.events, state: backends.state, hub: hub, group: configuration.nodeId, logger: logger, metrics: metrics
                )
            )
            services.append(
                PresencePublisher(
                    hub: hub, state: backends.state, nodeId: configuration.nodeId, interval: configuration.presenceInterval,
                    logger: logger
                )
            )
            services.append(
                RosterPublisher(
                    hub: hub, plans: backends.store, roster: RosterBuilder(store: backends.store, state: backends.state),
                    interval: configuration.presenceInterval, logger: logger))
        } else {
            application = Application(
                router: router, server: .guardedHTTP1(limits: guardLimits, budgets: budgets),
                configuration: .init(address: address, serverName: "ExamBell", backlog: configuration.listenBacklog),
                onServerRunning: { await onServerRunning($0.localAddress?.port ?? configuration.port) }, logger: logger
            )
        }
        if configuration.roles.contains(.web) {
            services.append(relay)
            services.append(sync)
            services.append(AuditChainer(store: backends.store, interval: .seconds(1), logger: logger))
            services.append(
                EndScheduler(
                    endService: endService, examDay: examDay, store: backends.store, interval: configuration.schedulerInterval, logger: logger
                )
            )
            services.append(
                WebhookDispatcher(
                    store: backends.store, roster: RosterBuilder(store: backends.store, state: backends.state), targets: configuration.webhookTargets,
                    retryFor: configuration.webhookRetryFor, interval: configuration.webhookInterval,
                    answerGrace: .seconds(configuration.answerGraceSeconds), logger: logger
                )
            )
        }
        application.addServices(services)
        if let prepare = backends.prepare { application.beforeServerStarts(perform: prepare) }
        if let adminPort = configuration.adminPort, let web {
            let adminRouter = try buildRouter(configuration: configuration, backends: backends, web: web, metrics: metrics, hub: nil, lane: .admin)
            let limits = configuration.adminConnectionLimits
            adminLane = Application(
                router: adminRouter, server: .guardedHTTP1(limits: limits, budgets: ConnectionBudgets(maxOpen: limits.openBudget)),
                configuration: .init(address: .hostname(configuration.host, port: adminPort), serverName: "ExamBell"),
                onServerRunning: { await onAdminLaneRunning($0.localAddress?.port ?? adminPort) }, logger: logger
            )
        } else {
            adminLane = nil
        }
        self.application = application
        self.hub = hub
        self.pings = socketServer?.pings
        self.outboxRelay = relay
        self.finalSync = sync
        self.sessions = sessions
        self.metrics = metrics
        self.logger = logger
        self.runsSockets = configuration.roles.contains(.socket)
    }

    /// Runs the node until SIGTERM or SIGINT, then stops it gracefully (see `serviceGroup`).
    public func run() async throws {
        try await serviceGroup().run()
    }

    /// The node's service group. Stopped gracefully (a signal, or `triggerGracefulShutdown`),
    /// its parts stop in reverse order of start: a socket node first closes its browsers with
    /// 1012 (`SocketDrain`); then the HTTP server finishes in-flight requests; then the
    /// application's services (the presence and roster publishers, the queue consumer, the
    /// scheduler, final sync, the outbox relay, which publishes what is due); last the
    /// backends' services close their connections (the Redis client, PostgreSQL's pool).
    public func serviceGroup(gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint]) -> ServiceGroup {
        var services: [any Service] = [application]
        if let adminLane { services.append(adminLane) }
        if runsSockets { services.append(SocketDrain(hub: hub, logger: logger)) }
        return ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: gracefulShutdownSignals, logger: logger
            )
        )
    }
}

/// `/ready`: 200 when the DB and the state store (Redis) answer, else 503 naming which does not.
func readiness(_ backends: ExamBellBackends) async throws -> JSONResponse<[String: String]> {
    async let database: Bool = (try? await backends.store.outboxBacklog()) != nil
    async let stateStore: Bool = (try? await backends.state.get(["exambell:ready"])) != nil
    let (db, state) = await (database, stateStore)
    let body = ["status": db && state ? "ready" : "unavailable", "database": db ? "ok" : "down", "stateStore": state ? "ok" : "down"]
    return JSONResponse(status: db && state ? .ok : .serviceUnavailable, value: body)
}

/// `/metrics` is open unless the node has a metrics token (`--metrics-token`): then only a
/// scraper sending it as `Authorization: Bearer` reads it.
func requireMetricsToken(_ token: String?, _ request: Request) throws {
    guard let token, !token.isEmpty else { return }
    guard let presented = request.bearerToken, SecretToken.constantTimeEqual(presented, token) else {
        throw ExamBellError.unauthorized("/metrics needs Authorization: Bearer <metrics token>.")
    }
}

/// Prometheus' text format.
func metricsResponse(_ text: String) -> Response {
    Response(
        status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
        body: .init(byteBuffer: ByteBuffer(string: text))
    )
}

/// Which listener a router serves: the public port (everything the node's roles serve), or
/// the admin lane (`--admin-port`: the operators' and admin API and the console only).
enum Lane: Sendable {
    case everything
    case admin
}

/// The web role's controllers, made once and shared by both lanes (their budgets and
/// throttles are per node, not per listener).
struct WebRoutes: Sendable {
    let operators: OperatorsController<ExamBellRequestContext>
    let exams: ExamsController<ExamBellRequestContext>
    let browser: BrowserController<ExamBellRequestContext>
    let examDay: ExamDayController<ExamBellRequestContext>
    let webhooks: WebhooksController<ExamBellRequestContext>
    let receipts: ReceiptsController<ExamBellRequestContext>
    let report: ReportController<ExamBellRequestContext>

    init(
        configuration: ExamBellConfiguration, backends: ExamBellBackends, sessions: SessionTokens, endService: EndExamService,
        examDay: ExamDayService, metrics: NodeMetrics, passwords: Passwords
    ) throws {
        guard let adminToken = configuration.adminToken, !adminToken.isEmpty else {
            throw ExamBellError.badRequest(code: "admin_token_required", "A web node needs --admin-token (EXAMBELL_ADMIN_TOKEN).")
        }
        let auth = OperatorAuth(adminToken: adminToken, store: backends.store)
        let spending = Spending(configuration.budgets)
        operators = OperatorsController(
            store: backends.store, auth: auth, maxBodySize: configuration.maxBodySize,
            secureCookies: configuration.publicWebURL.lowercased().hasPrefix("https:"), sessionLifetime: configuration.consoleSessionLifetime,
            budgets: configuration.budgets, checking: Slots(limit: configuration.maxLoginsChecking), passwords: passwords
        )
        let settings = RequestSettings(configuration)
        let roster = RosterBuilder(store: backends.store, state: backends.state)
        exams = ExamsController(
            store: backends.store, state: backends.state, roster: roster, settings: settings, auth: auth, sessions: sessions,
            endService: endService,
            setup: ExamSetupService(store: backends.store, state: backends.state), spending: spending)
        let receiptService = ReceiptService(
            store: backends.store, sessionSecret: configuration.sessionSecret, graceSeconds: configuration.answerGraceSeconds,
            maxKeys: configuration.budgets.receiptKeys)
        browser = BrowserController(
            store: backends.store, state: backends.state, settings: settings, sessions: sessions, examDay: examDay, metrics: metrics,
            spending: spending
        )
        receipts = ReceiptsController(
            receipts: receiptService, auth: auth, sessions: sessions, spending: spending, budgets: configuration.budgets, store: backends.store)
        report = ReportController(
            auth: auth, roster: RosterBuilder(store: backends.store, state: backends.state), store: backends.store, state: backends.state,
            receipts: receiptService)
        self.examDay = ExamDayController(
            store: backends.store, roster: roster, settings: settings, auth: auth, sessions: sessions, examDay: examDay, spending: spending
        )
        webhooks = WebhooksController(
            store: backends.store, auth: auth, targets: configuration.webhookTargets, maxBodySize: configuration.maxBodySize,
            maxEndpoints: configuration.budgets.webhookEndpoints, spending: spending)
    }

    /// The routes of `lane` under `/api`: the pages' own calls only on the public port.
    func add(to router: Router<ExamBellRequestContext>, lane: Lane) {
        router.addRoutes(operators.endpoints, atPath: "api")
        router.addRoutes(exams.endpoints, atPath: "api")
        if lane == .everything { router.addRoutes(browser.endpoints, atPath: "api") }
        router.addRoutes(examDay.endpoints, atPath: "api")
        router.addRoutes(webhooks.endpoints, atPath: "api")
        router.addRoutes(receipts.endpoints, atPath: "api")
        router.addRoutes(report.endpoints, atPath: "api")
    }
}

/// The HTTP routes of the node's roles on `lane`: the JSON API (web), the pages, `/health`.
func buildRouter(
    configuration: ExamBellConfiguration,
    backends: ExamBellBackends,
    web: WebRoutes?,
    metrics: NodeMetrics,
    hub: SocketHub?,
    lane: Lane = .everything
) throws -> Router<ExamBellRequestContext> {
    let router = Router(context: ExamBellRequestContext.self)
    router.middlewares.add(ClientAddressMiddleware(proxies: configuration.connectionLimits.trustedProxies))
    // Before the error middleware: a listed platform's page reads the errors too.
    router.middlewares.add(CORSMiddleware(policy: configuration.originPolicy))
    router.middlewares.add(APIErrorMiddleware())
    router.middlewares.add(OriginMiddleware(policy: configuration.originPolicy))
    router.get("health") { _, _ in JSONResponse(value: ["status": "ok"]) }
    // The server's clock for the SDK's samples: no credential, no backend (like /health).
    router.get("api/clock") { _, _ in JSONResponse(value: ["serverTimeMs": Int64((Date().timeIntervalSince1970 * 1000).rounded())]) }
    router.get("ready") { _, _ in try await readiness(backends) }
    let countsOutbox = configuration.roles.contains(.web)
    let metricsToken = configuration.metricsToken
    router.get("metrics") { request, _ in
        try requireMetricsToken(metricsToken, request)
        let backlog = countsOutbox ? try? await backends.store.outboxBacklog() : nil
        return metricsResponse(metrics.exposition(browsers: hub.map(NodeMetrics.Browsers.init), outboxBacklog: backlog))
    }
    web?.add(to: router, lane: lane)
    let pageRoles = lane == .admin ? configuration.roles.intersection(.admin) : configuration.roles
    try PageAssets.load().addRoutes(to: router, pages: pageRoles.contains(.web), console: pageRoles.contains(.admin))
    return router
}

/// The admin server (관리 서버) on its own: the console's pages and a proxy of `/api/…` to
/// the web server at `configuration.publicWebURL` through `http`; no backend at all.
public func buildAdminApplication(
    configuration: ExamBellConfiguration, http: HTTPClient = .shared, logger: Logger,
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) throws -> Application<RouterResponder<ExamBellRequestContext>> {
    guard let webURL = URL(string: configuration.publicWebURL), webURL.scheme == "http" || webURL.scheme == "https" else {
        throw ExamBellError.badRequest(code: "invalid_web_url", "--web-url must be an http:// or https:// URL.")
    }
    let router = Router(context: ExamBellRequestContext.self)
    router.middlewares.add(ClientAddressMiddleware(proxies: configuration.connectionLimits.trustedProxies))
    router.middlewares.add(APIErrorMiddleware())
    router.get("health") { _, _ in JSONResponse(value: ["status": "ok"]) }
    let metrics = NodeMetrics()
    let metricsToken = configuration.metricsToken
    router.get("metrics") { request, _ in
        try requireMetricsToken(metricsToken, request)
        return metricsResponse(metrics.exposition(browsers: nil, outboxBacklog: nil))
    }
    AdminAPIProxy(webURL: webURL, maxBodySize: configuration.maxBodySize, http: http).addRoutes(to: router)
    try PageAssets.load().addRoutes(to: router, pages: false, console: true)
    return Application(
        router: router,
        server: .guardedHTTP1(
            limits: configuration.connectionLimits, budgets: ConnectionBudgets(maxOpen: configuration.connectionLimits.openBudget)),
        configuration: .init(
            address: .hostname(configuration.host, port: configuration.port), serverName: "ExamBell", backlog: configuration.listenBacklog
        ),
        onServerRunning: { await onServerRunning($0.localAddress?.port ?? configuration.port) }, logger: logger
    )
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with a `ConnectionGuard` first and a 120 s idle timeout.
    static func guardedHTTP1(limits: ConnectionGuard.Limits, budgets: ConnectionBudgets) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            GuardedChannel(
                base: HTTP1Channel(responder: responder, configuration: .init(idleTimeout: .seconds(120))), limits: limits, budgets: budgets
            )
        }
    }
}

extension NodeMetrics.Browsers {
    /// What a socket node's hub holds now.
    init(_ hub: SocketHub) {
        let counts = hub.countsByRole()
        self.init(candidates: counts.candidates, proctors: counts.proctors, rooms: hub.roomCount)
    }
}
