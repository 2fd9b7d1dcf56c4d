import ExamBellCore
import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Where webhooks may go. A target is an `http` or `https` URL; its addresses are checked
/// when it is registered and again before every attempt (a name can change what it points
/// to): link-local and cloud metadata addresses are always refused, and `--webhook-allow
/// CIDR…`, when given, is the only space allowed.
public struct WebhookTargets: Sendable {
    /// Always refused: IPv4 link-local (cloud metadata at 169.254.169.254), IPv6 link-local,
    /// and the IPv6 metadata addresses of the big clouds.
    static package let refused: [CIDR] = ["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"].compactMap(CIDR.init)

    public let allowed: [CIDR]

    public init(allowed: [CIDR] = []) {
        self.allowed = allowed
    }

    /// Parses `--webhook-allow` values; 400 naming the first that is not a CIDR.
    public static func parseAllowed(_ values: [String]) throws(ExamBellError) -> [CIDR] {
        try values.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
            .map { value throws(ExamBellError) in
                guard let cidr = CIDR(value) else {
                    throw .badRequest(code: "invalid_option", "--webhook-allow takes CIDR blocks like 10.0.0.0/8; \"\(value)\" is not one.")
                }
                return cidr
            }
    }

    /// The URL, checked for shape: http(s), a host, no credentials, at most 2,048 bytes.
    public static func validURL(_ text: String) throws(ExamBellError) -> URL {
        guard text.utf8.count <= 2048 else { throw .badRequest(code: "invalid_url", "url is longer than 2,048 bytes.") }
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https" else {
            throw .badRequest(code: "invalid_url", "url must be an http:// or https:// URL.")
        }
        guard let host = url.host, !host.isEmpty else { throw .badRequest(code: "invalid_url", "url has no host.") }
        guard url.user == nil, url.password == nil else {
            throw .badRequest(code: "invalid_url", "url must not carry credentials; the signature authenticates ExamBell.")
        }
        return url
    }

    /// The first address of `addresses` this policy refuses, if any.
    public func refusal(_ addresses: [SocketAddress]) -> String? {
        for address in addresses {
            guard let ip = address.ipAddress else { continue }
            if Self.refused.contains(where: { $0.contains(address) }) {
                return "\(ip) is link-local or a metadata address"
            }
            if !allowed.isEmpty, !allowed.contains(where: { $0.contains(address) }) {
                return "\(ip) is outside --webhook-allow"
            }
        }
        return nil
    }

    /// Resolves the URL's host (off the event loops) and checks every address; throws 400
    /// `webhook_target_refused`, or `unresolvable` when the name has no address.
    public func check(_ url: URL) async throws -> [SocketAddress] {
        let host = (url.host ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        let port = url.port ?? (url.scheme?.lowercased() == "https" ? 443 : 80)
        let addresses: [SocketAddress]
        if let literal = try? SocketAddress(ipAddress: host, port: port) {
            addresses = [literal]
        } else {
            addresses = try await NIOThreadPool.singleton.runIfActive { Self.resolve(host, port: port) }
        }
        guard !addresses.isEmpty else {
            throw ExamBellError.badRequest(code: "webhook_target_unresolvable", "\(host) has no address.")
        }
        if let why = refusal(addresses) {
            throw ExamBellError.badRequest(code: "webhook_target_refused", "Webhooks cannot go to \(host): \(why).")
        }
        return addresses
    }

    static package func resolve(_ host: String, port: Int) -> [SocketAddress] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [SocketAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            if let raw = entry.pointee.ai_addr {
                switch Int32(raw.pointee.sa_family) {
                case AF_INET:
                    raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { addresses.append(SocketAddress($0.pointee, host: host)) }
                case AF_INET6:
                    raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { addresses.append(SocketAddress($0.pointee, host: host)) }
                default: break
                }
            }
            cursor = entry.pointee.ai_next
        }
        return addresses
    }
}

/// An address block, `10.0.0.0/8` or `fd00::/8`.
public struct CIDR: Sendable, Hashable, CustomStringConvertible {
    package let bytes: [UInt8]
    package let prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let address = try? SocketAddress(ipAddress: parts[0], port: 0), let bytes = address.addressBytes else { return nil }
        let prefix = parts.count == 2 ? Int(parts[1]) : bytes.count * 8
        guard let prefix, prefix >= 0, prefix <= bytes.count * 8 else { return nil }
        self.bytes = bytes
        self.prefix = prefix
    }

    public var description: String {
        ((try? SocketAddress(packedIPAddress: ByteBuffer(bytes: bytes), port: 0))?.ipAddress ?? "?") + "/\(prefix)"
    }

    /// Whether `address` is in the block (an IPv4-mapped IPv6 address counts as its IPv4).
    public func contains(_ address: SocketAddress) -> Bool {
        guard var other = address.addressBytes else { return false }
        if bytes.count == 4, other.count == 16, other[0..<10].allSatisfy({ $0 == 0 }), other[10] == 0xff, other[11] == 0xff {
            other = Array(other[12...])
        }
        guard other.count == bytes.count else { return false }
        var left = prefix
        for index in bytes.indices where left > 0 {
            let bits = min(8, left)
            let mask: UInt8 = bits == 8 ? 0xff : ~(0xff >> UInt8(bits))
            if bytes[index] & mask != other[index] & mask { return false }
            left -= bits
        }
        return true
    }
}

extension SocketAddress {
    /// The raw address bytes (4 or 16), or nil for a Unix socket.
    package var addressBytes: [UInt8]? {
        switch self {
        case .v4(let v4): withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }
        case .v6(let v6): withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
        case .unixDomainSocket: nil
        }
    }
}
