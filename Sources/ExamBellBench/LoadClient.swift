import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

/// The bench's browsers: plain SwiftNIO WebSocket connections, as cheap as a client can be
/// so that the client disturbs the measured server as little as possible on a shared machine.
///
/// Each connection's handler runs on its event loop and stamps the moment the awaited
/// message arrives (monotonic nanoseconds) into its own slot; nothing hops to Swift
/// concurrency on the hot path. Pings are answered, so connections can idle for minutes.
final class LoadClient: Sendable {
    /// When each connection's awaited message arrived (0: not yet), and how many did.
    final class Receipts: Sendable {
        let stamps: Mutex<[UInt64]>
        let armed = Atomic<Bool>(false)

        init(count: Int) { stamps = Mutex(Array(repeating: 0, count: count)) }

        func stamp(_ index: Int, at nanoseconds: UInt64) {
            stamps.withLock { if $0[index] == 0 { $0[index] = nanoseconds } }
        }

        var received: Int { stamps.withLock { $0.lazy.filter { $0 != 0 }.count } }
        var all: [UInt64] { stamps.withLock { $0 } }
    }

    /// One browser to open: where, and which source address to use.
    struct Target: Sendable {
        var host: String
        var port: Int
        var uri: String
        var source: String?
    }

    let group: MultiThreadedEventLoopGroup
    let receipts: Receipts
    /// What a message must contain to count as the awaited one (nil: any text frame).
    let awaited: String?
    private let channels = Mutex<[any Channel]>([])
    let opened = Atomic<Int>(0)
    let failed = Atomic<Int>(0)

    init(count: Int, awaited: String?, threads: Int = System.coreCount) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        receipts = Receipts(count: count)
        self.awaited = awaited
    }

    /// A `ws://host:port/path?query` URL as a target, spread over `sourceAddresses`
    /// (127.0.0.x on loopback) by `index`.
    static func target(_ url: String, index: Int, sourceAddresses: [String]) throws -> Target {
        guard let components = URLComponents(string: url), components.scheme == "ws", let host = components.host else {
            throw LoadClientError("not a ws:// URL: \(url.prefix(60))")
        }
        var uri = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        if let query = components.percentEncodedQuery { uri += "?" + query }
        let source = sourceAddresses.isEmpty ? nil : sourceAddresses[index % sourceAddresses.count]
        return Target(host: host, port: components.port ?? 80, uri: uri, source: source)
    }

    /// Opens every target, at most `concurrency` handshakes at a time; `progress` is called
    /// now and then with (opened, failed).
    func open(_ targets: [Target], concurrency: Int, progress: @Sendable (Int, Int) -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for (index, target) in targets.enumerated() {
                if running >= concurrency {
                    await group.next()
                    running -= 1
                }
                running += 1
                group.addTask { await self.connect(target, index: index) }
                if index % 250 == 0 { progress(opened.load(ordering: .relaxed), failed.load(ordering: .relaxed)) }
            }
            await group.waitForAll()
        }
        progress(opened.load(ordering: .relaxed), failed.load(ordering: .relaxed))
    }

    private func connect(_ target: Target, index: Int) async {
        enum Upgrade: Sendable {
            case upgraded
            case refused
        }
        let receipts = self.receipts
        let awaited = self.awaited
        var bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.seconds(10))
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
        if let source = target.source, let address = try? SocketAddress(ipAddress: source, port: 0) {
            bootstrap = bootstrap.bind(to: address)
        }
        do {
            let (channel, upgrade) = try await bootstrap.connect(host: target.host, port: target.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let upgrader = NIOTypedWebSocketClientUpgrader<Upgrade>(
                        maxFrameSize: 1 << 24,
                        upgradePipelineHandler: { channel, _ in
                            channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(
                                    ReceiptHandler(index: index, receipts: receipts, awaited: awaited)
                                )
                                return .upgraded
                            }
                        }
                    )
                    var headers = HTTPHeaders()
                    headers.add(name: "Host", value: "\(target.host):\(target.port)")
                    let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target.uri, headers: headers)
                    let negotiated = try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(
                        configuration: .init(
                            upgradeConfiguration: .init(
                                upgradeRequestHead: head, upgraders: [upgrader],
                                notUpgradingCompletionHandler: { channel in channel.eventLoop.makeSucceededFuture(.refused) }
                            )
                        )
                    )
                    return (channel, negotiated)
                }
            }
            guard try await upgrade.get() == .upgraded else {
                channel.close(promise: nil)
                failed.add(1, ordering: .relaxed)
                return
            }
            channels.withLock { $0.append(channel) }
            opened.add(1, ordering: .relaxed)
        } catch {
            failed.add(1, ordering: .relaxed)
        }
    }

    /// From now on, awaited messages are stamped.
    func arm() { receipts.armed.store(true, ordering: .releasing) }

    /// Closes every connection and the event loops.
    func shutdown() async {
        let all = channels.withLock { channels in
            defer { channels = [] }
            return channels
        }
        for channel in all { channel.close(promise: nil) }
        try? await group.shutdownGracefully()
    }

    /// Monotonic nanoseconds, the clock of the stamps.
    static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds }
}

struct LoadClientError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Stamps the first awaited text frame, answers pings, ignores the rest.
final class ReceiptHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    let index: Int
    let receipts: LoadClient.Receipts
    let awaited: String?

    init(index: Int, receipts: LoadClient.Receipts, awaited: String?) {
        self.index = index
        self.receipts = receipts
        self.awaited = awaited
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .text:
            let now = LoadClient.now()
            guard receipts.armed.load(ordering: .acquiring) else { return }
            if let awaited {
                let text = frame.unmaskedData.getString(at: frame.unmaskedData.readerIndex, length: frame.unmaskedData.readableBytes) ?? ""
                guard text.contains(awaited) else { return }
            }
            receipts.stamp(index, at: now)
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            context.close(promise: nil)
        default:
            break
        }
    }
}
