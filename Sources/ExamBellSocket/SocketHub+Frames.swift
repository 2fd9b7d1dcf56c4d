import ExamBellCore
import NIOCore
import NIOWebSocket

/// The hub's frames: encoded once, as wire bytes, for every browser they go to.
extension SocketHub {
    static package func endFrame(examId: String, at time: Timestamp) -> ByteBuffer {
        textFrame(ExamEndSocketMessage(examId: examId, timestamp: time).json)
    }

    /// A text frame's wire bytes, encoded once for every browser it goes to.
    static package func textFrame(_ text: String) -> ByteBuffer {
        encode(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(string: text)))
    }

    /// A server frame's wire bytes (unmasked): header and payload in one buffer.
    static package func encode(_ frame: WebSocketFrame) -> ByteBuffer {
        var payload = frame.data
        let length = payload.readableBytes
        var buffer = ByteBufferAllocator().buffer(capacity: length + 10)
        buffer.writeInteger(UInt8(frame.fin ? 0x80 : 0) | UInt8(webSocketOpcode: frame.opcode))
        if length < 126 {
            buffer.writeInteger(UInt8(length))
        } else if length <= Int(UInt16.max) {
            buffer.writeInteger(UInt8(126))
            buffer.writeInteger(UInt16(length))
        } else {
            buffer.writeInteger(UInt8(127))
            buffer.writeInteger(UInt64(length))
        }
        buffer.writeBuffer(&payload)
        return buffer
    }
}
