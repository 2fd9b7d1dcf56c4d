/// When a candidate's browsers were connected, as the socket nodes saw it, and what that makes
/// of its exam: how often it dropped and how long it was offline (the exam report's
/// `disconnects` and `offlineSeconds`).
///
/// Each socket node records each candidate socket it holds as a span (connected at, closed at;
/// open while it lasts). A candidate may move between nodes and hold two tabs at once, so it is
/// connected whenever any span of it covers the time, on any node.
public struct ConnectionSpan: Sendable, Hashable {
    public var candidateId: String
    /// The socket node process that held it (its node id and when it started).
    public var instance: String
    /// Milliseconds since 1970.
    public var start: Int64
    /// Nil while the socket is open (or when its node died before saying it closed).
    public var end: Int64?

    public init(candidateId: String, instance: String, start: Int64, end: Int64?) {
        self.candidateId = candidateId
        self.instance = instance
        self.start = start
        self.end = end
    }
}

public struct Connectivity: Sendable, Hashable {
    /// How many times the candidate went from connected to no socket at all before its end.
    public var disconnects: Int
    /// The time with no socket between its first connection and its end (or now), in seconds.
    public var offlineSeconds: Int

    public init(disconnects: Int, offlineSeconds: Int) {
        self.disconnects = disconnects
        self.offlineSeconds = offlineSeconds
    }

    /// One candidate's spans measured up to `until` (its end, or now while it runs); nil when
    /// it never connected before `until`.
    ///
    /// An open span lasts while its node is alive (`lastSeen[instance]` is `until` or later);
    /// a node that stopped answering ends it at the node's last heartbeat; a node never heard
    /// of ends it where the candidate connected again (the browser reconnects at once when its
    /// node dies), else at its own start.
    public static func measure(_ spans: [ConnectionSpan], until: Int64, lastSeen: [String: Int64]) -> Connectivity? {
        let starts = spans.map(\.start).sorted()
        var closed: [(start: Int64, end: Int64)] = []
        for span in spans where span.start < until {
            let end: Int64
            if let known = span.end {
                end = known
            } else if let seen = lastSeen[span.instance] {
                end = max(span.start, seen)
            } else {
                end = starts.first { $0 > span.start } ?? span.start
            }
            closed.append((span.start, min(max(end, span.start), until)))
        }
        guard let first = closed.map(\.start).min() else { return nil }
        closed.sort { $0.start < $1.start }
        var covered: Int64 = 0
        var disconnects = 0
        var current = closed[0]
        for span in closed.dropFirst() {
            if span.start <= current.end {
                current.end = max(current.end, span.end)
            } else {
                covered += current.end - current.start
                disconnects += 1
                current = span
            }
        }
        covered += current.end - current.start
        if current.end < until { disconnects += 1 }
        let offline = max(0, until - first - covered)
        return Connectivity(disconnects: disconnects, offlineSeconds: Int((offline + 500) / 1000))
    }
}
