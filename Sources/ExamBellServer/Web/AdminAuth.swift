import ExamBellCore
import Foundation
import Hummingbird

/// Checks `Authorization: Bearer <admin token>` in constant time.
struct AdminAuth: Sendable {
    let token: String

    /// Throws 401 unless the request carries the admin token.
    func require(_ request: Request) throws(ExamBellError) {
        guard let presented = request.bearerToken else {
            throw .unauthorized("Admin calls need Authorization: Bearer <admin token>.")
        }
        guard Self.constantTimeEqual(presented, token) else { throw .unauthorized("The admin token is wrong.") }
    }

    /// Whether the request carries the admin token.
    func accepts(_ request: Request) -> Bool {
        request.bearerToken.map { Self.constantTimeEqual($0, token) } ?? false
    }

    /// Compares every byte whatever the first difference, so timing tells nothing.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var difference = UInt8(truncatingIfNeeded: x.count ^ y.count)
        for i in 0..<max(x.count, y.count) {
            difference |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0)
        }
        return difference == 0
    }
}

extension Request {
    /// The token of an `Authorization: Bearer …` header.
    var bearerToken: String? {
        guard let header = headers[.authorization] else { return nil }
        let prefix = "Bearer "
        guard header.count > prefix.count, header.lowercased().hasPrefix("bearer ") else { return nil }
        return String(header.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces)
    }
}
