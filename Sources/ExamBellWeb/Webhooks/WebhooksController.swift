import ExamBellCore
import ExamBellHTTP
import ExamBellRuntime
import Foundation
import Hummingbird
import Logging

/// The webhook calls of DESIGN "Platform integration": operators and admins register,
/// list and remove endpoints, read their deliveries and send one again; viewers read.
/// The secret is in the answer of the registration only.
package struct WebhooksController<Context: RequestContext>: Sendable {
    package let store: any WebhookStore
    package let auth: OperatorAuth
    package let targets: WebhookTargets
    package let maxBodySize: Int
    /// Endpoints a deployment may register.
    package let maxEndpoints: Int
    package let spending: Spending

    package init(store: any WebhookStore, auth: OperatorAuth, targets: WebhookTargets, maxBodySize: Int, maxEndpoints: Int, spending: Spending) {
        self.store = store
        self.auth = auth
        self.targets = targets
        self.maxBodySize = maxBodySize
        self.maxEndpoints = maxEndpoints
        self.spending = spending
    }

    package var endpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.post("webhooks", use: create)
        routes.get("webhooks", use: list)
        routes.delete("webhooks/:webhookId", use: delete)
        routes.get("webhooks/:webhookId/deliveries", use: deliveries)
        routes.post("webhooks/:webhookId/deliveries/:eventId/resend", use: resend)
        return routes
    }

    package struct CreateBody: Decodable {
        package var url: String
        package var events: [String]
    }

    @Sendable package func create(_ request: Request, context: Context) async throws -> JSONResponse<NewWebhookView> {
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

    @Sendable package func list(_ request: Request, context: Context) async throws -> JSONResponse<WebhookListView> {
        _ = try await auth.require(request, context: context, .read)
        return JSONResponse(value: WebhookListView(webhooks: try await store.webhooks().map(WebhookView.init)))
    }

    @Sendable package func delete(_ request: Request, context: Context) async throws -> Response {
        let caller = try await auth.require(request, context: context, .operate)
        try spending.webhookCalls.require(caller.name)
        let id = try Self.webhookId(context)
        try await store.deleteWebhook(id, at: .now())
        context.logger.info("webhook removed", metadata: ["webhookId": "\(id)", "by": "\(caller.name)"])
        return Response(status: .noContent)
    }

    @Sendable package func deliveries(_ request: Request, context: Context) async throws -> JSONResponse<DeliveryListView> {
        _ = try await auth.require(request, context: context, .read)
        let id = try Self.webhookId(context)
        let limit = min(max(request.uri.queryParameters.get("limit", as: Int.self) ?? 200, 1), 500)
        return JSONResponse(value: DeliveryListView(deliveries: try await store.webhookDeliveries(id, limit: limit).map(WebhookDeliveryView.init)))
    }

    @Sendable package func resend(_ request: Request, context: Context) async throws -> JSONResponse<ResendView> {
        let caller = try await auth.require(request, context: context, .operate)
        try spending.webhookCalls.require(caller.name)
        let id = try Self.webhookId(context)
        let eventId = try context.parameters.require("eventId")
        guard eventId.utf8.count <= 64 else { throw ExamBellError.badRequest(code: "invalid_id", "eventId is too long.") }
        try await store.resendWebhookDelivery(webhookId: id, eventId: eventId, nowMs: Timestamp.milliseconds())
        context.logger.info("webhook delivery sent again", metadata: ["webhookId": "\(id)", "eventId": "\(eventId)", "by": "\(caller.name)"])
        return JSONResponse(status: .accepted, value: ResendView(webhookId: id, eventId: eventId, status: "queued"))
    }

    static package func webhookId(_ context: Context) throws -> String {
        let id = try context.parameters.require("webhookId")
        guard Identifier.isValid(id) else { throw StoreError.notFound(code: "webhook_not_found", message: "No webhook \(id.prefix(64)).") }
        return id
    }
}

package struct NewWebhookView: Codable, Sendable {
    package var webhookId: String
    package var url: String
    package var events: [String]
    package var secret: String
}

package struct WebhookView: Codable, Sendable {
    package var webhookId: String
    package var url: String
    package var events: [String]
    package var createdAt: String
    package var createdBy: String

    package init(_ endpoint: WebhookEndpoint) {
        self.init(
            webhookId: endpoint.webhookId, url: endpoint.url, events: endpoint.events.map(\.rawValue), createdAt: endpoint.createdAt.iso8601,
            createdBy: endpoint.createdBy
        )
    }

    package init(webhookId: String, url: String, events: [String], createdAt: String, createdBy: String) {
        self.webhookId = webhookId
        self.url = url
        self.events = events
        self.createdAt = createdAt
        self.createdBy = createdBy
    }
}

package struct WebhookListView: Codable, Sendable {
    package var webhooks: [WebhookView]
}

package struct WebhookDeliveryView: Codable, Sendable {
    package var eventId: String
    package var type: String
    package var examId: String
    package var createdAt: String
    package var attempts: Int
    package var lastStatus: Int?
    package var lastError: String?
    package var deliveredAt: String?
    package var gaveUpAt: String?
    package var nextAttemptAt: String?
    /// The start of the target's last answer (at most 1 KiB), for whoever debugs the endpoint.
    package var lastResponse: String?

    package init(_ delivery: WebhookDelivery) {
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
    package func encode(to encoder: any Encoder) throws {
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

package struct DeliveryListView: Codable, Sendable {
    package var deliveries: [WebhookDeliveryView]
}

package struct ResendView: Codable, Sendable {
    package var webhookId: String
    package var eventId: String
    package var status: String
}
