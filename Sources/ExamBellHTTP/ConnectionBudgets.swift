import ExamBellCore
import ExamBellRuntime
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// What every connection of a listener may spend, and when it must be done with each phase
/// (see `ConnectionGuard`). Each is a budget of DESIGN's "Budgets and the admin lane"; the
/// README lists them with their options.
public struct ConnectionLimits: Sendable {
    /// How long each request's head may take to arrive, from its first byte.
    public var headerTimeout: TimeAmount = .seconds(20)
    /// How large each request's head may be (`431` past it), however it arrives.
    public var maxHeaderBytes = 16 * 1024
    /// Connections of one client address still waiting for a head (`429` past it).
    public var maxPendingPerAddress = 1_000
    /// HTTP connections one client address may hold open at once, whatever they are doing
    /// (`429` past it). A WebSocket counts under the socket node's own budgets once upgraded.
    /// An exam hall behind one NAT address holds a keep-alive connection or two per browser.
    public var maxOpenPerAddress = 4_000
    /// Connections (HTTP and WebSocket) the listener holds in all; a new one past it sheds the
    /// oldest HTTP connection (`ConnectionBudgets`), or is refused (`503 node_busy`) when only
    /// WebSockets are open: the node stays below its open-file limit. nil: the open-file
    /// limit less a reserve for the DB, Redis, files and the admin lane (600 descriptors).
    public var maxOpen: Int?
    /// How long a request's body may take to arrive, from its head, whether or not its route
    /// reads it (an unread body is drained by the server after the answer, within this time).
    public var bodyTimeout: TimeAmount = .seconds(60)
    /// The load balancers in front: their connections are not counted per address, and
    /// their requests are counted by the client they forward for.
    public var trustedProxies = TrustedProxies()

    public init() {}

    /// Descriptors kept for everything but the public listener's connections.
    static package let reservedDescriptors = 600

    /// `maxOpen`, or what the process's open-file limit leaves after the reserve.
    package var openBudget: Int {
        maxOpen ?? max(64, openFileLimit() - Self.reservedDescriptors)
    }
}

/// What a listener's connections hold right now, per client address and in all: one per
/// listener, shared by its connections' guards, each count checked and taken in one step.
///
/// When the listener holds `maxOpen` connections, a new one sheds the oldest connection that
/// has not shown who it is (an HTTP connection, whatever its phase) rather than be refused:
/// WebSockets, whose browsers presented a session, stay; a node near its open-file limit
/// keeps answering, and a flood of idle connections only pushes its own out.
final package class ConnectionBudgets: Sendable {
    package struct Counts {
        package var pending: [String: Int] = [:]
        package var open: [String: Int] = [:]
        package var total = 0
        package var nextId: UInt64 = 0
        /// The HTTP connections, by age (ids grow): the ones a new connection may shed.
        package var sheddable: [UInt64: any Channel] = [:]
        /// No sheddable id is below it: the search for the oldest starts here and only moves
        /// on (each id is passed once), so shedding costs O(1) amortized.
        package var oldest: UInt64 = 1

        mutating package func takeOldest() -> (any Channel)? {
            while oldest <= nextId {
                if let channel = sheddable.removeValue(forKey: oldest) { return channel }
                oldest += 1
            }
            return nil
        }
    }

    private let counts = Mutex(Counts())
    /// Connections the listener holds in all at most (`ConnectionLimits.openBudget`).
    package let maxOpen: Int

    package init(maxOpen: Int) {
        self.maxOpen = maxOpen
    }

    /// Why a new connection is refused.
    package enum Refusal: Error { case node, address }

    /// Counts a new connection of `channel` (from `address` unless nil: a trusted proxy's);
    /// returns its id. At `maxOpen`, the oldest HTTP connection is closed to make room; with
    /// none to close, `.node`.
    package func open(_ channel: any Channel, address: String?, limit: Int) -> Result<UInt64, Refusal> {
        let (result, shed): (Result<UInt64, Refusal>, (any Channel)?) = counts.withLock { counts in
            var shed: (any Channel)?
            if counts.total >= maxOpen {
                guard let oldest = counts.takeOldest() else { return (.failure(.node), nil) }
                shed = oldest
            }
            if let address {
                guard counts.open[address, default: 0] < limit else { return (.failure(.address), shed) }
                counts.open[address, default: 0] += 1
            }
            counts.total += 1
            counts.nextId += 1
            counts.sheddable[counts.nextId] = channel
            return (.success(counts.nextId), shed)
        }
        shed?.close(promise: nil)
        return result
    }

    /// A counted HTTP connection became a WebSocket: its address's HTTP count is given back
    /// (the socket node's per-address budget counts it now) and it is no longer shed; it
    /// still counts in all.
    package func upgraded(_ id: UInt64, address: String?) {
        counts.withLock { counts in
            counts.sheddable[id] = nil
            if let address { counts.open.countDown(address) }
        }
    }

    package func close(_ id: UInt64, address: String?, upgraded: Bool) {
        counts.withLock { counts in
            counts.total -= 1
            counts.sheddable[id] = nil
            if let address, !upgraded { counts.open.countDown(address) }
        }
    }

    /// One more connection of `address` waits for its head, unless it has `limit` already.
    package func enterHead(_ address: String, limit: Int) -> Bool {
        counts.withLock { counts in
            guard counts.pending[address, default: 0] < limit else { return false }
            counts.pending[address, default: 0] += 1
            return true
        }
    }

    package func leaveHead(_ address: String) {
        counts.withLock { $0.pending.countDown(address) }
    }
}
