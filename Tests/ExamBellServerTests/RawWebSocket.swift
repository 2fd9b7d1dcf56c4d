import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A WebSocket client on a bare TCP socket, for browsers that misbehave: one that never
/// reads (slow), never answers pings (dead), floods, or sends oversized messages. It never
/// blocks a thread: reads poll the non-blocking socket between short sleeps.
///
/// `@unchecked Sendable`: `pending` is mutable, but each instance is driven by the one test
/// that made it, one call at a time (it is never used from two tasks at once); `fd` is a
/// constant.
final class RawWebSocket: @unchecked Sendable {
    let fd: Int32
    private var pending: [UInt8] = []

    convenience init(port: Int, token: String, headers: String = "") async throws {
        try await self.init(port: port, query: "token=\(token)", headers: headers)
    }

    /// A handshake to `/ws?<query>` (`ticket=…`).
    init(port: Int, query: String, headers: String = "") async throws {
        let (fd, head, rest) = try await Self.handshake(port: port, query: query, headers: headers)
        self.fd = fd
        pending = rest
        guard head.hasPrefix("HTTP/1.1 101") else {
            Glibc.close(fd)
            throw TestFailure("upgrade refused: \(head)")
        }
    }

    /// The answer to a handshake the server refuses: its head, and its body once the server
    /// closed the connection (within 10 s).
    static func refusal(port: Int, token: String, headers: String = "") async throws -> (head: String, body: String) {
        try await refusal(port: port, query: "token=\(token)", headers: headers)
    }

    static func refusal(port: Int, query: String, headers: String = "") async throws -> (head: String, body: String) {
        let (fd, head, rest) = try await handshake(port: port, query: query, headers: headers)
        let socket = RawWebSocket(fd: fd, pending: rest)
        defer { socket.close() }
        guard await socket.ended(within: .seconds(10)) else { throw TestFailure("the refused connection stayed open") }
        return (head, String(decoding: socket.pending, as: UTF8.self))
    }

    /// The answer's head to a handshake (`HTTP/1.1 101 …` or a refusal's); the connection is
    /// closed either way.
    static func answer(port: Int, token: String) async throws -> String {
        let (fd, head, _) = try await handshake(port: port, query: "token=\(token)", headers: "")
        Glibc.close(fd)
        return head
    }

    init(fd: Int32, pending: [UInt8]) {
        self.fd = fd
        self.pending = pending
    }

    /// Connects and sends a WebSocket handshake; returns the socket, the answer's head and
    /// what came after it.
    private static func handshake(port: Int, query: String, headers: String) async throws -> (Int32, String, [UInt8]) {
        let socket = try bare(
            port: port,
            sending: Array(
                ("GET /ws?\(query) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(headers)\r\n").utf8
            ))
        let fd = socket.fd
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            socket.readAvailable()
            if let end = socket.pending.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: socket.pending[..<end.lowerBound], as: UTF8.self)
                return (fd, head, Array(socket.pending[end.upperBound...]))
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        Glibc.close(fd)
        throw TestFailure("no upgrade response")
    }

    /// A bare TCP connection to the node that sends `bytes` (half a request, say) and nothing more.
    static func bare(port: Int, sending bytes: [UInt8]) throws -> RawWebSocket {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestFailure("connect() failed") }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let socket = RawWebSocket(fd: fd, pending: [])
        try socket.send(bytes)
        return socket
    }

    /// What the node has sent so far (after `ended(within:)`, all of it).
    var received: String { String(decoding: pending, as: UTF8.self) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written > 0 { offset += written } else if errno == EAGAIN { usleep(1000) } else { throw TestFailure("write failed") }
        }
    }

    /// Sends one masked text frame, as browsers must.
    func sendText(_ text: String) throws {
        try sendFrame(opcode: 0x1, fin: true, Array(text.utf8))
    }

    /// Sends one masked frame: `opcode` 0x0 continuation, 0x1 text, 0x8 close, 0x9 ping.
    /// `masked: false` sends it as no browser may (RFC 6455 §5.1).
    func sendFrame(opcode: UInt8, fin: Bool, _ payload: [UInt8], masked: Bool = true) throws {
        var frame: [UInt8] = [(fin ? 0x80 : 0) | opcode]
        let maskBit: UInt8 = masked ? 0x80 : 0
        if payload.count < 126 {
            frame.append(maskBit | UInt8(payload.count))
        } else if payload.count < 65536 {
            frame += [maskBit | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xff)]
        } else {
            frame.append(maskBit | 127)
            frame += (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xff) }
        }
        guard masked else { return try send(frame + payload) }
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        frame += mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        try send(frame)
    }

    /// Whatever the socket holds now; false once the server closed it.
    @discardableResult
    func readAvailable() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count > 0 {
                pending += buffer[..<count]
                continue
            }
            return !(count == 0 || (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
        }
    }

    /// Reads frames until a close frame (its code) or the end of the connection (nil), within `limit`.
    /// Returns `.some(nil)` for a connection that ended without a close frame; nil when still open.
    func closeCode(within limit: Duration) async -> UInt16?? {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            let open = readAvailable()
            while pending.count >= 2 {
                let opcode = pending[0] & 0x0f
                var length = Int(pending[1] & 0x7f)
                var header = 2
                if length == 126 {
                    guard pending.count >= 4 else { break }
                    length = Int(pending[2]) << 8 | Int(pending[3])
                    header = 4
                } else if length == 127 {
                    guard pending.count >= 10 else { break }
                    length = (2..<10).reduce(0) { $0 << 8 | Int(pending[$1]) }
                    header = 10
                }
                guard pending.count >= header + length else { break }
                let payload = Array(pending[header..<header + length])
                pending.removeSubrange(..<(header + length))
                if opcode == 0x8 { return .some(payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : nil) }
            }
            if !open { return .some(nil) }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Reads until the server ends the connection: true if it did within `limit`.
    func ended(within limit: Duration) async -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if !readAvailable() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    private var closed = false

    /// Closes the socket once: a second `close(fd)` would close whatever descriptor the
    /// process reused the number for (a NIO channel's, which then breaks its event loop).
    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
