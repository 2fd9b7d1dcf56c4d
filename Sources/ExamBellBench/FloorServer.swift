import ArgumentParser
import ExamBellCore
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

/// `exambell bench-floor`: the fastest fan-out this machine can do with SwiftNIO, to measure
/// ExamBell and Nchan against.
///
/// A minimal server: it accepts WebSocket connections on any path (swift-nio's upgrader and
/// frame codec, no session, no room, no state store), and on `POST /pub` encodes the body
/// once as a text frame and writes it to every connection, one job per event loop, before
/// answering 200. `exambell bench --ws-url ws://…/sub --publish-url http://…/pub` drives it
/// exactly as it drives nginx + Nchan.
public struct BenchFloor: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bench-floor",
        abstract: "Serve the machine's floor for `exambell bench`: WebSockets on any path, POST /pub writes one pre-encoded frame to each."
    )

    @Option(help: "Where to listen.")
    var host = "127.0.0.1"

    @Option(help: "The port to listen on.")
    var port = 8091

    public init() {}

    public func run() async throws {
        raiseOpenFileLimit()
        let group = MultiThreadedEventLoopGroup.singleton
        let subscribers = FloorSubscribers()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let upgrader = NIOWebSocketServerUpgrader(
                    shouldUpgrade: { channel, _ in channel.eventLoop.makeSucceededFuture(HTTPHeaders()) },
                    upgradePipelineHandler: { channel, _ in
                        subscribers.add(channel)
                        channel.closeFuture.whenComplete { _ in subscribers.remove(channel) }
                        return channel.pipeline.removeHandler(name: "publish").flatMapThrowing {
                            try channel.pipeline.syncOperations.addHandler(FloorSubscriberHandler())
                        }
                    }
                )
                return channel.pipeline.configureHTTPServerPipeline(
                    withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in })
                ).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(FloorPublishHandler(subscribers: subscribers), name: "publish")
                }
            }
            .bind(host: host, port: port).get()
        print("bench floor listening on \(host):\(channel.localAddress?.port ?? port): WebSockets on any path, POST /pub to publish")
        try await channel.closeFuture.get()
    }
}

/// Every open WebSocket of the floor server, by event loop.
final class FloorSubscribers: Sendable {
    private let channels = Mutex([ObjectIdentifier: (any EventLoop, [ObjectIdentifier: any Channel])]())

    func add(_ channel: any Channel) {
        channels.withLock { $0[ObjectIdentifier(channel.eventLoop), default: (channel.eventLoop, [:])].1[ObjectIdentifier(channel)] = channel }
    }

    func remove(_ channel: any Channel) {
        channels.withLock { _ = $0[ObjectIdentifier(channel.eventLoop)]?.1.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Writes the frame's wire bytes to every subscriber, one job per event loop; returns how many.
    func publish(_ text: ByteBuffer) -> Int {
        var frame = ByteBufferAllocator().buffer(capacity: text.readableBytes + 10)
        frame.writeInteger(UInt8(0x81))
        let length = text.readableBytes
        if length < 126 {
            frame.writeInteger(UInt8(length))
        } else {
            frame.writeInteger(UInt8(126))
            frame.writeInteger(UInt16(length))
        }
        var payload = text
        frame.writeBuffer(&payload)
        let bytes = frame
        let byLoop = channels.withLock { $0.values.map { ($0.0, Array($0.1.values)) } }
        for (loop, channels) in byLoop {
            loop.execute {
                for channel in channels {
                    // Past the frame encoder, straight to the socket, as ExamBell's hub does.
                    if let encoder = try? channel.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self) {
                        encoder.writeAndFlush(NIOAny(bytes), promise: nil)
                    }
                }
            }
        }
        return byLoop.reduce(0) { $0 + $1.1.count }
    }
}

/// A subscriber: answers pings and closes, ignores the rest.
final class FloorSubscriberHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }
}

/// `POST /pub`: publishes the body to every subscriber, then answers 200 with their count.
final class FloorPublishHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let subscribers: FloorSubscribers
    private var body: ByteBuffer?
    private var isPublish = false

    init(subscribers: FloorSubscribers) {
        self.subscribers = subscribers
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            isPublish = head.method == .POST && head.uri.hasPrefix("/pub")
            body = context.channel.allocator.buffer(capacity: 256)
        case .body(var chunk):
            body?.writeBuffer(&chunk)
        case .end:
            let count = isPublish ? subscribers.publish(body ?? ByteBuffer()) : 0
            let text = isPublish ? "published to \(count)\n" : "POST /pub to publish\n"
            var headers = HTTPHeaders([("content-length", "\(text.utf8.count)"), ("content-type", "text/plain")])
            headers.add(name: "connection", value: "keep-alive")
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: isPublish ? .ok : .notFound, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
