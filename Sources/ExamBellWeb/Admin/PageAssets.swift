import Crypto
import ExamBellCore
import Foundation
import Hummingbird

/// The browser pages (candidate, proctor, admin console) and their scripts and styles,
/// read once at start from the module's `Public` folder and served with security headers.
package struct PageAssets: Sendable {
    package struct Asset: Sendable {
        package var body: ByteBuffer
        package var contentType: String
        /// A strong validator: the SDK's version and the file's SHA-256.
        package var etag: String
    }

    /// The browser SDK's version (`/sdk/exambell.js`), in its ETag.
    static package let sdkVersion = "1.0.0"

    /// Files by their path under `Public` (`candidate.html`, `sdk/exambell.js`).
    package let assets: [String: Asset]

    /// Loads every file of `Public` and its folders.
    static package func load() throws -> PageAssets {
        guard let folder = Bundle.module.url(forResource: "Public", withExtension: nil) else {
            throw ExamBellError(status: 500, code: "missing_assets", message: "The page files are missing from the build.")
        }
        var assets: [String: Asset] = [:]
        let files = FileManager.default.enumerator(atPath: folder.path)?.compactMap { $0 as? String } ?? []
        for name in files where !(name as NSString).lastPathComponent.hasPrefix(".") {
            var isFolder: ObjCBool = false
            let url = folder.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), !isFolder.boolValue else { continue }
            let data = try Data(contentsOf: url)
            let type: String =
                switch (name as NSString).pathExtension {
                case "html": "text/html; charset=utf-8"
                case "js": "text/javascript; charset=utf-8"
                case "ts": "application/typescript; charset=utf-8"
                case "css": "text/css; charset=utf-8"
                case "json": "application/json; charset=utf-8"
                default: "application/octet-stream"
                }
            let digest = SHA256.hash(data: data).prefix(12).map { String(format: "%02x", $0) }.joined()
            assets[name] = Asset(body: ByteBuffer(bytes: data), contentType: type, etag: "\"\(sdkVersion)-\(digest)\"")
        }
        return PageAssets(assets: assets)
    }

    /// Pages and static files: `/candidate`, `/proctor` (with `pages`), `/admin` (with
    /// `console`), `/static/NAME` and `/sdk/NAME`.
    package func addRoutes<Context: RequestContext>(to router: Router<Context>, pages: Bool, console: Bool) {
        if pages {
            router.get("candidate") { _, _ in try self.response("candidate.html") }
            router.get("proctor") { _, _ in try self.response("proctor.html") }
            router.get("openapi.json") { _, _ in try self.response("openapi.json") }
        }
        if console {
            router.get("admin") { _, _ in try self.response("admin.html") }
            router.get("/") { _, _ in Response(status: .seeOther, headers: [.location: "/admin"]) }
        }
        router.get("static/:file") { _, context in try self.response(try context.parameters.require("file")) }
        // The browser SDK, for any page: cacheable, revalidated by its ETag.
        router.get("sdk/:file") { request, context in
            let name = "sdk/" + (try context.parameters.require("file"))
            guard let asset = assets[name] else { throw HTTPError(.notFound) }
            if request.headers[.ifNoneMatch]?.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces) == asset.etag }) == true
            {
                return Response(status: .notModified, headers: [.eTag: asset.etag, .cacheControl: Self.sdkCaching])
            }
            var response = try self.response(name)
            response.headers[.eTag] = asset.etag
            response.headers[.cacheControl] = Self.sdkCaching
            return response
        }
    }

    /// Five minutes without asking, then revalidated: a new release reaches pages soon.
    static package let sdkCaching = "public, max-age=300, must-revalidate"

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
