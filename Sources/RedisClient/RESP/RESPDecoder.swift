import NIOCore

/// Decodes RESP2 and RESP3 values from a byte stream, however the bytes are split.
///
/// A value is parsed only once all of it has arrived; until then the reader index is left
/// where it was and the decoder asks for more bytes.
public struct RESPDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = RESPValue

    /// Deepest nesting of aggregates accepted.
    static let maxDepth = 64
    /// Longest line (simple string, error, number) accepted without its end.
    static let maxLine = 1 << 20

    public init() {}

    public mutating func decode(buffer: inout ByteBuffer) throws -> RESPValue? {
        let start = buffer.readerIndex
        do {
            if let value = try Self.parse(&buffer, depth: 0) { return value }
        } catch {
            throw error
        }
        buffer.moveReaderIndex(to: start)
        return nil
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> RESPValue? {
        try decode(buffer: &buffer)
    }

    /// Parses one value, or returns nil (reader index unspecified) when bytes are missing.
    static func parse(_ buffer: inout ByteBuffer, depth: Int) throws(RESPProtocolError) -> RESPValue? {
        guard depth <= maxDepth else { throw .tooDeep }
        guard let marker = buffer.readInteger(as: UInt8.self) else { return nil }
        switch marker {
        case UInt8(ascii: "+"):
            return try line(&buffer).map { .simpleString($0) }
        case UInt8(ascii: "-"):
            return try line(&buffer).map { .error($0) }
        case UInt8(ascii: ":"):
            guard let text = try line(&buffer) else { return nil }
            guard let value = Int64(text) else { throw .invalidNumber(text) }
            return .integer(value)
        case UInt8(ascii: "$"):
            guard let blob = try blob(&buffer) else { return nil }
            return .bulkString(blob.value)
        case UInt8(ascii: "!"):
            guard let blob = try blob(&buffer) else { return nil }
            return .error(blob.value.map { String(buffer: $0) } ?? "")
        case UInt8(ascii: "="):
            guard let blob = try blob(&buffer) else { return nil }
            let text = blob.value.map { String(buffer: $0) } ?? ""
            // Verbatim strings start with a three-letter format and a colon, like `txt:`.
            return .verbatimString(text.count >= 4 ? String(text.dropFirst(4)) : text)
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"):
            guard let count = try length(&buffer) else { return nil }
            guard count >= 0 else { return marker == UInt8(ascii: "*") ? .array(nil) : .null }
            var values: [RESPValue] = []
            values.reserveCapacity(min(count, 4096))
            for _ in 0..<count {
                guard let value = try parse(&buffer, depth: depth + 1) else { return nil }
                values.append(value)
            }
            switch marker {
            case UInt8(ascii: "~"): return .set(values)
            case UInt8(ascii: ">"): return .push(values)
            default: return .array(values)
            }
        case UInt8(ascii: "%"), UInt8(ascii: "|"):
            guard let count = try length(&buffer) else { return nil }
            var pairs: [RESPValue.Pair] = []
            for _ in 0..<max(0, count) {
                guard let key = try parse(&buffer, depth: depth + 1), let value = try parse(&buffer, depth: depth + 1) else {
                    return nil
                }
                pairs.append(.init(key: key, value: value))
            }
            // An attribute (`|`) annotates the value that follows it; the value is the reply.
            if marker == UInt8(ascii: "|") { return try parse(&buffer, depth: depth) }
            return .map(pairs)
        case UInt8(ascii: "_"):
            return try line(&buffer).map { _ in .null }
        case UInt8(ascii: ","):
            guard let text = try line(&buffer) else { return nil }
            switch text {
            case "inf": return .double(.infinity)
            case "-inf": return .double(-.infinity)
            case "nan": return .double(.nan)
            default:
                guard let value = Double(text) else { throw .invalidNumber(text) }
                return .double(value)
            }
        case UInt8(ascii: "#"):
            guard let text = try line(&buffer) else { return nil }
            guard text == "t" || text == "f" else { throw .invalidNumber(text) }
            return .boolean(text == "t")
        case UInt8(ascii: "("):
            return try line(&buffer).map { .bigNumber($0) }
        default:
            throw .unexpectedMarker(marker)
        }
    }

    /// The text up to the next CRLF, consuming it; nil when the CRLF has not arrived.
    private static func line(_ buffer: inout ByteBuffer) throws(RESPProtocolError) -> String? {
        let view = buffer.readableBytesView
        guard let cr = view.firstIndex(of: UInt8(ascii: "\r")) else {
            if view.count > maxLine { throw .lineTooLong }
            return nil
        }
        let length = cr - view.startIndex
        guard view.count >= length + 2 else { return nil }
        guard view[cr + 1] == UInt8(ascii: "\n") else { throw .missingCRLF }
        let text = buffer.readString(length: length)
        buffer.moveReaderIndex(forwardBy: 2)
        return text
    }

    private static func length(_ buffer: inout ByteBuffer) throws(RESPProtocolError) -> Int? {
        guard let text = try line(&buffer) else { return nil }
        guard let value = Int(text), value >= -1 else { throw .invalidNumber(text) }
        return value
    }

    /// A length-prefixed blob; `value` is nil for length -1.
    private static func blob(_ buffer: inout ByteBuffer) throws(RESPProtocolError) -> (value: ByteBuffer?, Void)? {
        guard let count = try length(&buffer) else { return nil }
        guard count >= 0 else { return (nil, ()) }
        guard buffer.readableBytes >= count + 2 else { return nil }
        let slice = buffer.readSlice(length: count)!
        guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw .missingCRLF }
        return (slice, ())
    }
}

/// The server sent bytes that are not RESP.
public enum RESPProtocolError: Error, Sendable, Equatable {
    case unexpectedMarker(UInt8)
    case invalidNumber(String)
    case missingCRLF
    case lineTooLong
    case tooDeep
}
