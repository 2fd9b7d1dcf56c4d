import Crypto
import Foundation

/// `ExamBell-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
public enum WebhookSignature {
    public static let header = "ExamBell-Signature"
    /// How far a signature's time may be from the receiver's clock (replays older are refused).
    public static let tolerance: Int64 = 300

    /// The header's value for `body` signed at `time`.
    public static func sign(body: String, secret: String, time: Int64) -> String {
        "t=\(time),v1=\(mac(body: body, secret: secret, time: time))"
    }

    static package func mac(body: String, secret: String, time: Int64) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Data("\(time).\(body)".utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return code.map { String(format: "%02x", $0) }.joined()
    }

    /// Why a delivery's signature does not hold.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case missing
        case malformed
        case stale(seconds: Int64)
        case mismatch

        public var description: String {
            switch self {
            case .missing: "no \(WebhookSignature.header) header"
            case .malformed: "the \(WebhookSignature.header) header is not t=…,v1=…"
            case .stale(let seconds): "signed \(seconds) s away from now (more than \(WebhookSignature.tolerance) s)"
            case .mismatch: "the signature does not match the body (wrong secret, or a changed body)"
            }
        }
    }

    /// Checks `header` against `body` and `secret` at `now` (unix seconds).
    public static func verify(header: String?, body: String, secret: String, now: Int64) throws(Failure) {
        guard let header else { throw .missing }
        var time: Int64?
        var signatures: [String] = []
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pair.count == 2 else { throw .malformed }
            if pair[0] == "t" { time = Int64(pair[1]) } else if pair[0] == "v1" { signatures.append(pair[1]) }
        }
        guard let time, !signatures.isEmpty else { throw .malformed }
        guard abs(now - time) <= tolerance else { throw .stale(seconds: now - time) }
        let expected = Array(mac(body: body, secret: secret, time: time).utf8)
        // Constant time over the expected length.
        let matches = signatures.contains { candidate in
            let given = Array(candidate.utf8)
            guard given.count == expected.count else { return false }
            return zip(given, expected).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
        }
        guard matches else { throw .mismatch }
    }

    /// A new endpoint secret: `whsec_` and 32 random bytes, base64url.
    public static func newSecret() -> String {
        let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        return "whsec_"
            + bytes.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
