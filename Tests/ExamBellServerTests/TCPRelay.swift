import Foundation
import NIOCore
import NIOPosix
import Synchronization

/// A TCP relay in front of a server, for the faults a network gives, played in the test with no
/// hook in the product: between a node and PostgreSQL it can lose the answer to one end's
/// COMMIT (`arm`); between a Redis replica and its primary it can hold the replication stream
/// back (`holdReplies`), so the replica lags when the primary dies.
///
/// Every byte passes unchanged until the relay is armed. Armed, it watches each connection
/// for a transaction that ends an exam (`UPDATE exam_plan SET status`); at that
/// transaction's COMMIT it closes the node's side at once, so the node never hears the
/// answer, and then either hands the COMMIT to PostgreSQL after `delay` (`.lateCommit`: the
/// end commits while the node already sees a dead connection) or never (`.lostCommit`:
/// PostgreSQL sees its client go and rolls the transaction back). It fires once.
final class TCPRelay: Sendable {
    enum Fault: Sendable {
        case lateCommit(delay: Duration)
        case lostCommit
    }

    private let group: MultiThreadedEventLoopGroup
    private let listener: any Channel
    private let state: Mutex<(armed: Fault?, fired: Int)>
    /// While true, what the server sends is kept back (and lost if the server dies).
    private let holding = Atomic<Bool>(false)
    let port: Int

    private init(group: MultiThreadedEventLoopGroup, listener: any Channel) {
        self.group = group
        self.listener = listener
        self.state = Mutex((armed: nil, fired: 0))
        self.port = listener.localAddress?.port ?? 0
    }

    /// A relay on a free loopback port in front of `host:port`.
    static func start(to host: String, port targetPort: Int) async throws -> TCPRelay {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let box = RelayBox()
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                ClientBootstrap(group: inbound.eventLoop).connect(host: host, port: targetPort).flatMap { outbound in
                    let connection = RelayConnection(inbound: inbound, outbound: outbound, relay: box)
                    return inbound.pipeline.addHandler(ToServer(connection)).flatMap {
                        outbound.pipeline.addHandler(FromServer(connection))
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let relay = TCPRelay(group: group, listener: listener)
        box.relay.withLock { $0 = relay }
        return relay
    }

    /// `url` (postgres://…) with its host and port replaced by this relay's.
    func url(through url: String) -> String {
        guard var components = URLComponents(string: url) else { return url }
        components.host = "127.0.0.1"
        components.port = port
        return components.string ?? url
    }

    /// The next end transaction's COMMIT meets `fault`.
    func arm(_ fault: Fault) { state.withLock { $0.armed = fault } }

    /// From now on the server's bytes are held back (true) or pass again, with what was held (false).
    func holdReplies(_ hold: Bool) { holding.store(hold, ordering: .sequentiallyConsistent) }
    var holdsReplies: Bool { holding.load(ordering: .sequentiallyConsistent) }

    /// How many times a fault fired.
    var fired: Int { state.withLock { $0.fired } }

    /// The armed fault, taken (it fires once).
    fileprivate func take() -> Fault? {
        state.withLock { state in
            defer {
                if state.armed != nil {
                    state.armed = nil
                    state.fired += 1
                }
            }
            return state.armed
        }
    }

    func stop() async {
        try? await listener.close()
        try? await group.shutdownGracefully()
    }
}

/// Lets connections find their relay, which exists only once its listener is bound.
private final class RelayBox: Sendable {
    let relay = Mutex<TCPRelay?>(nil)
}

/// One node connection and its PostgreSQL connection; used on the inbound channel's loop.
private final class RelayConnection: @unchecked Sendable {
    let inbound: any Channel
    let outbound: any Channel
    let relay: RelayBox
    /// This connection's open transaction ends an exam.
    var endingExam = false
    /// The node's side is gone: PostgreSQL's answers go nowhere.
    var answersDropped = false

    init(inbound: any Channel, outbound: any Channel, relay: RelayBox) {
        self.inbound = inbound
        self.outbound = outbound
        self.relay = relay
    }

    func fromNode(_ buffer: ByteBuffer) {
        let text = String(decoding: buffer.readableBytesView, as: UTF8.self)
        if text.contains("UPDATE exam_plan SET status") { endingExam = true }
        if endingExam, text.contains("COMMIT"), let fault = relay.relay.withLock({ $0 })?.take() {
            answersDropped = true
            inbound.close(promise: nil)
            switch fault {
            case .lateCommit(let delay):
                let outbound = self.outbound
                outbound.eventLoop.scheduleTask(in: .milliseconds(Int64(delay / .milliseconds(1)))) {
                    outbound.writeAndFlush(buffer, promise: nil)
                    // PostgreSQL answers, nobody listens; then the connection goes.
                    outbound.eventLoop.scheduleTask(in: .seconds(2)) { outbound.close(promise: nil) }
                }
            case .lostCommit:
                outbound.close(promise: nil)
            }
            return
        }
        if text.contains("COMMIT") || text.contains("ROLLBACK") { endingExam = false }
        outbound.writeAndFlush(buffer, promise: nil)
    }

    /// Bytes the server sent while the relay held them back.
    var held: [ByteBuffer] = []

    func fromServer(_ buffer: ByteBuffer) {
        guard !answersDropped else { return }
        if relay.relay.withLock({ $0 })?.holdsReplies == true {
            held.append(buffer)
            // Look again shortly: the hold may be lifted while the server stays quiet.
            outbound.eventLoop.scheduleTask(in: .milliseconds(50)) { self.releaseHeld() }
            return
        }
        releaseHeld()
        inbound.writeAndFlush(buffer, promise: nil)
    }

    func releaseHeld() {
        guard !held.isEmpty, relay.relay.withLock({ $0 })?.holdsReplies != true, !answersDropped else { return }
        for buffer in held { inbound.write(buffer, promise: nil) }
        held = []
        inbound.flush()
    }

    func closed() {
        guard !answersDropped else { return }
        inbound.close(promise: nil)
        outbound.close(promise: nil)
    }
}

private final class ToServer: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let connection: RelayConnection
    init(_ connection: RelayConnection) { self.connection = connection }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection.fromNode(unwrapInboundIn(data))
    }
    func channelInactive(context: ChannelHandlerContext) { connection.closed() }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

private final class FromServer: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let connection: RelayConnection
    init(_ connection: RelayConnection) { self.connection = connection }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        // Both channels of a connection share one event loop (the outbound one was made on
        // the inbound one's loop).
        connection.fromServer(buffer)
    }
    func channelInactive(context: ChannelHandlerContext) { connection.closed() }
    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}
