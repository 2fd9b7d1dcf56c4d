import ExamBellCore
import Foundation
import Hummingbird

/// The browser pages (candidate, proctor, admin console) and their scripts and styles,
/// read once at start from the module's `Public` folder and served with security headers.
struct PageAssets: Sendable {
    struct Asset: Sendable {
        var body: ByteBuffer
        var contentType: String
    }

    let assets: [String: Asset]

    /// Loads every file of `Public`.
    static func load() throws -> PageAssets {
        guard let folder = Bundle.module.url(forResource: "Public", withExtension: nil) else {
            throw ExamBellError(status: 500, code: "missing_assets", message: "The page files are missing from the build.")
        }
        var assets: [String: Asset] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) where !name.hasPrefix(".") {
            let data = try Data(contentsOf: folder.appendingPathComponent(name))
            let type: String =
                switch (name as NSString).pathExtension {
                case "html": "text/html; charset=utf-8"
                case "js": "text/javascript; charset=utf-8"
                case "css": "text/css; charset=utf-8"
                case "json": "application/json; charset=utf-8"
                default: "application/octet-stream"
                }
            assets[name] = Asset(body: ByteBuffer(bytes: data), contentType: type)
        }
        return PageAssets(assets: assets)
    }

    /// Pages and static files: `/candidate`, `/proctor`, `/admin` and `/static/NAME`.
    func addRoutes<Context: RequestContext>(to router: Router<Context>, roles: ExamBellConfiguration.Roles) {
        if roles.contains(.web) {
            router.get("candidate") { _, _ in try self.response("candidate.html") }
            router.get("proctor") { _, _ in try self.response("proctor.html") }
            router.get("openapi.json") { _, _ in try self.response("openapi.json") }
        }
        if roles.contains(.admin) {
            router.get("admin") { _, _ in try self.response("admin.html") }
            router.get("/") { _, _ in Response(status: .seeOther, headers: [.location: "/admin"]) }
        }
        router.get("static/:file") { _, context in try self.response(try context.parameters.require("file")) }
    }

    private func response(_ name: String) throws -> Response {
        guard let asset = assets[name] else { throw HTTPError(.notFound) }
        return Response(
            status: .ok,
            headers: [
                .contentType: asset.contentType,
                .contentSecurityPolicy:
                    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
                .init("X-Content-Type-Options")!: "nosniff",
                .init("Referrer-Policy")!: "no-referrer",
                .cacheControl: "no-cache",
            ],
            body: .init(byteBuffer: asset.body)
        )
    }
}
