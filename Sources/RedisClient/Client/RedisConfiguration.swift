import Foundation

/// Where a Redis server is and how to talk to it, from `redis://[[user]:password@]host:port[/db]`.
public struct RedisConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    public var database: Int
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

    /// Parses a `redis://` URL; throws a message fit for people (never echoing a password).
    public init(url text: String) throws(RedisURLError) {
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

    /// `host:port/db`, safe to print.
    public var description: String { "\(host):\(port)/\(database)" }
}

/// A `redis://` URL that cannot be used.
public struct RedisURLError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { "Redis URL \(message)" }
}
