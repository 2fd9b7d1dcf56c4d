import Foundation

/// Where a Redis server is and how to talk to it, from `redis://[[user]:password@]host:port[/db]`,
/// or, through Redis Sentinel, `redis+sentinel://[[user]:password@]HOST:PORT[,HOST:PORT…]/MASTER_NAME[/db]`:
/// then `host` and `port` are the first sentinel's, and every connection asks the sentinels
/// where the primary is now (`Sentinel.primary`).
public struct RedisConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// The sentinels to ask for the primary of `masterName`; empty for a plain server.
    public var sentinels: [Endpoint] = []
    /// The name the sentinels monitor the primary under.
    public var masterName: String?
    public var username: String?
    public var password: String?
    public var database: Int
    /// How long making a connection may take as a whole (connect, AUTH, SELECT); through
    /// sentinels, how long their answer may take, and then the primary's connection and `ROLE`.
    public var connectTimeout: Duration = .seconds(5)
    /// How long an ordinary command may take.
    public var commandTimeout: Duration = .seconds(5)

    public init(host: String, port: Int = 6379, username: String? = nil, password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
    }

    /// A host and port.
    public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        public var description: String { "\(host):\(port)" }
    }

    /// Whether the primary is found through sentinels.
    public var usesSentinel: Bool { masterName != nil }

    /// Parses a `redis://` or `redis+sentinel://` URL; throws a message fit for people
    /// (never echoing a password).
    public init(url text: String) throws(RedisURLError) {
        if text.hasPrefix("redis+sentinel://") {
            try self.init(sentinelURL: text)
            return
        }
        guard let components = URLComponents(string: text), components.scheme == "redis" else {
            throw RedisURLError(message: "must look like redis://[:password@]host:port[/db]")
        }
        guard let host = components.host, !host.isEmpty else { throw RedisURLError(message: "needs a host") }
        let port = components.port ?? 6379
        guard (1...65535).contains(port) else { throw RedisURLError(message: "has an invalid port") }
        var database = 0
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        if !path.isEmpty {
            guard let number = Int(path), number >= 0 else { throw RedisURLError(message: "database must be a number, like /0") }
            database = number
        }
        let user = components.user.flatMap { $0.isEmpty ? nil : $0.removingPercentEncoding }
        let password = components.password.flatMap { $0.isEmpty ? nil : $0.removingPercentEncoding }
        self.init(host: host, port: port, username: user, password: password, database: database)
    }

    private init(sentinelURL text: String) throws(RedisURLError) {
        let usage = "must look like redis+sentinel://[:password@]HOST:PORT[,HOST:PORT…]/MASTER_NAME[/db]"
        var rest = Substring(text.dropFirst("redis+sentinel://".count))
        var user: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let parts = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            user = parts.first.flatMap { $0.isEmpty ? nil : String($0).removingPercentEncoding }
            password = parts.count > 1 ? (parts[1].isEmpty ? nil : String(parts[1]).removingPercentEncoding) : nil
        }
        let pieces = rest.split(separator: "/", omittingEmptySubsequences: false)
        guard pieces.count >= 2, !pieces[0].isEmpty, !pieces[1].isEmpty else { throw RedisURLError(message: usage) }
        var sentinels: [Endpoint] = []
        for address in pieces[0].split(separator: ",") {
            guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
                (1...65535).contains(port), colon > address.startIndex
            else { throw RedisURLError(message: "\(usage) (each sentinel as HOST:PORT)") }
            sentinels.append(Endpoint(host: String(address[..<colon]), port: port))
        }
        guard let first = sentinels.first else { throw RedisURLError(message: usage) }
        var database = 0
        if pieces.count > 2, !pieces[2].isEmpty {
            guard let number = Int(pieces[2]), number >= 0 else { throw RedisURLError(message: "database must be a number, like /0") }
            database = number
        }
        self.init(host: first.host, port: first.port, username: user, password: password, database: database)
        self.sentinels = sentinels
        self.masterName = String(pieces[1])
    }

    /// `host:port/db` (or the sentinels and master name), safe to print.
    public var description: String {
        guard let masterName else { return "\(host):\(port)/\(database)" }
        return "sentinel \(sentinels.map(\.description).joined(separator: ",")) master \(masterName)/\(database)"
    }
}

/// A `redis://` URL that cannot be used.
public struct RedisURLError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { "Redis URL \(message)" }
}
