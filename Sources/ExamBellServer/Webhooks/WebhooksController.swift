import ExamBellCore
import Foundation
import Hummingbird
import Logging

/// The webhook calls of DESIGN "Platform integration": operators and admins register,
/// list and remove endpoints, read their deliveries and send one again; viewers read.
/// The secret is in the answer of the registration only.
struct WebhooksController<Context: RequestContext>: Sendable {
    let store: any WebhookStore
    let auth: OperatorAuth
    let targets: WebhookTargets
    let maxBodySize: Int
    /// Endpoints a deployment may register.
    let maxEndpoints: Int
    let spending: Spending

    var endpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.post("webhooks", use: create)
        routes.get("webhooks", use: list)
        routes.delete("webhooks/:webhookId", use: delete)
        routes.get("webhooks/:webhookId/deliveries", use: deliveries)
        routes.post("webhooks/:webhookId/deliveries/:eventId/resend", use: resend)
        return routes
    }

    struct CreateBody: Decodable {
        var url: String
        var events: [String]
    }

    @Sendable func create(_ request: Request, context: Context) async throws -> JSONResponse<NewWebhookView> {
        let caller = try await auth.require(request, context: context, .operate)
        try spending.webhookCalls.require(caller.name)
        let body = try await request.decodeJSON(CreateBody.self, limit: maxBodySize)
        let url = try WebhookTargets.validURL(body.url)
        guard body.events.count <= 16 else { throw ExamBellError.badRequest(code: "invalid_events", "events lists at most 16 types.") }
        let events = try WebhookEventType.parse(body.events)
        _ = try await targets.check(url)
        let endpoint = WebhookEndpoint(
            webhookId: "wh_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased(), url: body.url,
            events: events, createdAt: .now(), createdBy: caller.name
        )
        let secret = WebhookSignature.newSecret()
        try await store.createWebhook(endpoint, secret: secret, limit: maxEndpoints)
        context.logger.info(
            "webhook registered", metadata: ["webhookId": "\(endpoint.webhookId)", "host": "\(url.host ?? "")", "by": "\(caller.name)"]
        )
        return JSONResponse(
            status: .created,
            value: NewWebhookView(webhookId: endpoint.webhookId, url: endpoint.url, events: events.map(\.rawValue), secret: secret)
        )
    }

    @Sendable func list(_ request: Request, context: Context) async throws -> JSONResponse<WebhookListView> {
        _ = try await auth.require(request, context: context, .read)
        return JSONResponse(value: WebhookListView(webhooks: try await store.webhooks().map(WebhookView.init)))
    }

    @Sendable func delete(_ request: Request, context: Context) async throws -> Response {
        let caller = try await auth.require(request, context: context, .operate)
        try spending.webhookCalls.require(caller.name)
        let id = try Self.webhookId(context)
        try await store.deleteWebhook(id, at: .now())
        context.logger.info("webhook removed", metadata: ["webhookId": "\(id)", "by": "\(caller.name)"])
        return Response(status: .noContent)
    }

    @Sendable func deliveries(_ request: Request, context: Context) async throws -> JSONResponse<DeliveryListView> {
        _ = try await auth.require(request, context: context, .read)
        let id = try Self.webhookId(context)
        let limit = min(max(request.uri.queryParameters.get("limit", as: Int.self) ?? 200, 1), 500)
        return JSONResponse(value: DeliveryListView(deliveries: try await store.webhookDeliveries(id, limit: limit).map(WebhookDeliveryView.init)))
    }

    @Sendable func resend(_ request: Request, context: Context) async throws -> JSONResponse<ResendView> {
        let caller = try await auth.require(request, context: context, .operate)
        try spending.webhookCalls.require(caller.name)
        let id = try Self.webhookId(context)
        let eventId = try context.parameters.require("eventId")
        guard eventId.utf8.count <= 64 else { throw ExamBellError.badRequest(code: "invalid_id", "eventId is too long.") }
        try await store.resendWebhookDelivery(webhookId: id, eventId: eventId, nowMs: Timestamp.milliseconds())
        context.logger.info("webhook delivery sent again", metadata: ["webhookId": "\(id)", "eventId": "\(eventId)", "by": "\(caller.name)"])
        return JSONResponse(status: .accepted, value: ResendView(webhookId: id, eventId: eventId, status: "queued"))
    }

    static func webhookId(_ context: Context) throws -> String {
        let id = try context.parameters.require("webhookId")
        guard Identifier.isValid(id) else { throw StoreError.notFound(code: "webhook_not_found", message: "No webhook \(id.prefix(64)).") }
        return id
    }
}

struct NewWebhookView: Codable, Sendable {
    var webhookId: String
    var url: String
    var events: [String]
    var secret: String
}

struct WebhookView: Codable, Sendable {
    var webhookId: String
    var url: String
    var events: [String]
    var createdAt: String
    var createdBy: String

    init(_ endpoint: WebhookEndpoint) {
        self.init(
            webhookId: endpoint.webhookId, url: endpoint.url, events: endpoint.events.map(\.rawValue), createdAt: endpoint.createdAt.iso8601,
            createdBy: endpoint.createdBy
        )
    }

    init(webhookId: String, url: String, events: [String], createdAt: String, createdBy: String) {
        self.webhookId = webhookId
        self.url = url
        self.events = events
        self.createdAt = createdAt
        self.createdBy = createdBy
    }
}

struct WebhookListView: Codable, Sendable {
    var webhooks: [WebhookView]
}

struct WebhookDeliveryView: Codable, Sendable {
    var eventId: String
    var type: String
    var examId: String
    var createdAt: String
    var attempts: Int
    var lastStatus: Int?
    var lastError: String?
    var deliveredAt: String?
    var gaveUpAt: String?
    var nextAttemptAt: String?
    /// The start of the target's last answer (at most 1 KiB), for whoever debugs the endpoint.
    var lastResponse: String?

    init(_ delivery: WebhookDelivery) {
        lastResponse = delivery.lastResponse
        eventId = delivery.eventId
        type = delivery.type.rawValue
        examId = delivery.examId
        createdAt = delivery.createdAt.iso8601
        attempts = delivery.attempts
        lastStatus = delivery.lastStatus
        lastError = delivery.lastError
        deliveredAt = delivery.deliveredAt?.iso8601
        gaveUpAt = delivery.gaveUpAt?.iso8601
        nextAttemptAt = delivery.nextAttemptMs.map { Timestamp(secondsSince1970: ($0 + 999) / 1000).iso8601 }
    }

    /// Steps not reached are `null`, not missing keys (DESIGN's `deliveredAt`).
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(eventId, forKey: .eventId)
        try container.encode(type, forKey: .type)
        try container.encode(examId, forKey: .examId)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(attempts, forKey: .attempts)
        try container.encode(lastStatus, forKey: .lastStatus)
        try container.encode(lastError, forKey: .lastError)
        try container.encode(deliveredAt, forKey: .deliveredAt)
        try container.encode(gaveUpAt, forKey: .gaveUpAt)
        try container.encode(nextAttemptAt, forKey: .nextAttemptAt)
        try container.encode(lastResponse, forKey: .lastResponse)
    }
}

struct DeliveryListView: Codable, Sendable {
    var deliveries: [WebhookDeliveryView]
}

struct ResendView: Codable, Sendable {
    var webhookId: String
    var eventId: String
    var status: String
}
