/// Points in the end flow where a crash test stops or holds a node. A node is built with the
/// hook it is given (the configuration's `faults`); the product runs with `.none`, and only
/// the debug executable builds one (from `EXAMBELL_TEST_FAULT`, for the process-level crash
/// tests).
public struct FaultPoints: Sendable {
    public enum Point: String, Sendable, CaseIterable {
        /// An end request validated, before its transaction (a test holds an end in flight).
        case beforeEndCommit = "slow-end"
        /// The end committed; the state store and the queue have not heard of it yet.
        case afterEndCommit = "after-commit"
        /// A socket node read a queue entry and has neither broadcast nor acknowledged it.
        case socketAfterRead = "socket-after-read"
        /// A socket node wrote an end's frame to the first chunk of an event loop's browsers
        /// (`SocketHub.writeChunk`) and not yet to the rest (reached on the event loop).
        case socketMidBroadcast = "socket-mid-broadcast"
        /// Final sync read an exam's candidate rows and has not read the state store yet.
        case syncAfterRowsRead = "sync-after-rows-read"
    }

    private let hook: (@Sendable (Point) async -> Void)?
    /// For points reached where nothing may wait (on an event loop).
    private let hookNow: (@Sendable (Point) -> Void)?

    public init(_ hook: (@Sendable (Point) async -> Void)?, now hookNow: (@Sendable (Point) -> Void)? = nil) {
        self.hook = hook
        self.hookNow = hookNow
    }

    public static let none = FaultPoints(nil)

    package func reach(_ point: Point) async {
        await hook?(point)
    }

    package func reachNow(_ point: Point) {
        hookNow?(point)
    }
}
