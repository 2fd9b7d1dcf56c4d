import Crypto
import Foundation
import HummingbirdBcrypt
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Random secrets (console session ids, API tokens, CSRF tokens) and what the DB keeps of
/// them: a SHA-256 hash, so a copy of the DB opens no session.
public enum SecretToken {
    /// 32 random bytes, base64url without padding (43 characters), after `prefix`.
    public static func random(prefix: String = "") -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let text = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return prefix + text
    }

    /// The hex SHA-256 of a secret: what the DB stores and looks up.
    public static func hash(_ secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Compares every byte whatever the first difference, so timing tells nothing.
    public static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var difference = UInt8(truncatingIfNeeded: x.count ^ y.count)
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }
}

/// Operators' passwords: bcrypt (hummingbird-auth's), computed on threads of their own so a
/// login never holds an event loop, nor anything else, for the ~0.25 s of CPU a hash takes.
///
/// Not on NIO's shared blocking pool: SQLite runs every call there (two threads on two
/// cores), and a burst of logins queued ahead of them held up every query of the node, the
/// end request's included (CI saw a request wait 20 s). Logins queue behind each other only;
/// a query shares the CPU with them but never waits in their line.
///
/// A service of the node that uses it (the web role): its threads start with it and stop
/// when the node stops, after the HTTP server; a tool makes one for its call (`withPasswords`).
public final class Passwords: Service {
    /// bcrypt's cost: 2^12 rounds.
    public static let cost: UInt8 = 12
    /// Checked when the name is unknown, so a wrong name takes as long as a wrong password.
    static package let decoy = Bcrypt.hash("not-a-password-of-anyone", cost: cost)
    /// The threads hashes run on (one a core).
    private let pool: NIOThreadPool

    public init(threads: Int = System.coreCount) {
        pool = NIOThreadPool(numberOfThreads: threads)
        pool.start()
    }

    public func hash(_ password: String) async throws -> String {
        try await pool.runIfActive { Bcrypt.hash(password, cost: Self.cost) }
    }

    public func verify(_ password: String, hash: String?) async throws -> Bool {
        let matched = try await pool.runIfActive { Bcrypt.verify(password, hash: hash ?? Self.decoy) }
        return matched && hash != nil
    }

    /// Runs until the node stops gracefully, then stops the threads.
    public func run() async throws {
        try? await gracefulShutdown()
        try await pool.shutdownGracefully()
    }

    /// Runs `body` with a pool of its own, stopped afterwards (tools and tests).
    public static func withPasswords<R: Sendable>(_ body: (Passwords) async throws -> R) async throws -> R {
        let passwords = Passwords()
        do {
            let result = try await body(passwords)
            try await passwords.pool.shutdownGracefully()
            return result
        } catch {
            try? await passwords.pool.shutdownGracefully()
            throw error
        }
    }
}
