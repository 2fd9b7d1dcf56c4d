import ExamBellCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// The load balancers (and the admin server) a node sits behind, by IP address, and who a
/// request really comes from.
///
/// Behind a load balancer every connection comes from the balancer's address: the
/// per-address throttles (failed logins, wrong tokens) and caps would count all browsers
/// and operators as one client, and one guesser would lock everyone out. A connection from
/// a trusted proxy is counted by the client its `X-Forwarded-For` names instead (the
/// rightmost address that is not itself a trusted proxy: what the nearest proxy saw), and
/// it is not capped among unfinished connections (a proxy reads a request's head before it
/// opens a connection upstream; it finishes at once). Anyone else's `X-Forwarded-For` is
/// ignored: a client cannot pick the address it is counted by.
public struct TrustedProxies: Sendable, Hashable {
    public private(set) var addresses: Set<String> = []

    public init() {}

    /// Proxies at `addresses` (IPv4 or IPv6, exact; written as `SocketAddress` prints them).
    public init(_ addresses: some Sequence<String>) throws(ExamBellError) {
        for text in addresses {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            guard let address = Self.canonical(trimmed) else {
                throw .badRequest(code: "invalid_trusted_proxy", "A trusted proxy is an IP address, not \(trimmed).")
            }
            self.addresses.insert(address)
        }
    }

    /// Whether a connection from `peer` comes through a trusted proxy.
    public func trusts(_ peer: String?) -> Bool {
        guard let peer, !addresses.isEmpty else { return false }
        return addresses.contains(peer)
    }

    /// The client a request from `peer` carrying `forwardedFor` (every `X-Forwarded-For`
    /// value, in order) is counted as.
    public func client(peer: String?, forwardedFor: [String]) -> String {
        let peer = peer ?? "unknown"
        guard trusts(peer), !forwardedFor.isEmpty else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.reversed()
        for hop in hops {
            guard let address = Self.canonical(hop.trimmingCharacters(in: .whitespaces)) else { return peer }
            if !addresses.contains(address) { return address }
        }
        return peer
    }

    /// `text` as `SocketAddress` prints an IP address, or nil when it is none.
    static package func canonical(_ text: String) -> String? {
        guard !text.isEmpty, text.utf8.count <= 64, let address = try? SocketAddress(ipAddress: text, port: 0) else { return nil }
        return address.ipAddress
    }

    static package let forwardedFor = HTTPField.Name("X-Forwarded-For")!
}

/// Counts every request by its client (`TrustedProxies.client`): the first middleware of a
/// node's routers, so throttles see the client, not the load balancer.
/// A request with `X-Forwarded-For` from an address not trusted is logged once: a load
/// balancer left out of `--trusted-proxies` makes every client one address to the throttles.
package struct ClientAddressMiddleware: RouterMiddleware {
    package typealias Context = ExamBellRequestContext
    package let proxies: TrustedProxies
    private let warned = Once()

    final package class Once: Sendable {
        private let done = Atomic(false)
        /// True the first time only.
        package func first() -> Bool { !done.exchange(true, ordering: .relaxed) }
    }

    package init(proxies: TrustedProxies) {
        self.proxies = proxies
    }

    package func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard proxies.trusts(context.remoteAddress?.ipAddress) else {
            if request.headers[TrustedProxies.forwardedFor] != nil, warned.first() {
                context.logger.notice(
                    "a request came through a proxy that is not trusted: per-address limits count the proxy; list a load balancer in --trusted-proxies",
                    metadata: ["peer": "\(context.remoteAddress?.ipAddress ?? "unknown")"]
                )
            }
            return try await next(request, context)
        }
        var context = context
        context.client = proxies.client(peer: context.remoteAddress?.ipAddress, forwardedFor: request.headers[values: TrustedProxies.forwardedFor])
        return try await next(request, context)
    }
}
