import ArgumentParser
import ExamBellCore
import ExamBellMemory
import ExamBellRedis
import ExamBellRuntime
import ExamBellSQL
import ExamBellServer
import Foundation
import Logging
import RedisClient
import ServiceLifecycle

/// Opens the backends the options name: SQLite or PostgreSQL, memory engine or Redis.
enum Backends {
    static func open(_ options: ServerOptions, logger: Logger) async throws -> ExamBellBackends {
        let failures = BackendFailures()
        let store: SQLExamStore
        var prepare: (@Sendable () async throws -> Void)?
        switch options.resolvedDatabase {
        case nil:
            // The embedded node's own folder: its owner's only.
            try FileManager.default.createDirectory(
                atPath: options.resolvedDataDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            chmod(options.resolvedDataDir, 0o700)
            store = try await openSQLite(
                URL(fileURLWithPath: options.resolvedDataDir).appendingPathComponent("exambell.sqlite").path, failures, logger)
        case let url? where url.hasPrefix("sqlite://"):
            let path = String(url.dropFirst("sqlite://".count))
            guard !path.isEmpty else { throw ValidationError("--database sqlite://PATH needs a path.") }
            store = try await openSQLite(path, failures, logger)
        case let url? where url.hasPrefix("postgres://") || url.hasPrefix("postgresql://"):
            do {
                // The node runs the pool in its service group and migrates before it serves.
                store = try PostgresExamStore.openForNode(url: url, failures: failures, logger: logger)
            } catch {
                throw ValidationError("--database (EXAMBELL_DATABASE_URL): \(error.message).")
            }
            prepare = { [store] in
                do {
                    try await store.migrate()
                } catch {
                    throw StartupError("Cannot use the PostgreSQL database (\(error)). Is it running, and is the URL right?")
                }
            }
        case let url?:
            throw ValidationError("--database must be postgres://… or sqlite://PATH, not \(url.prefix(12))….")
        }
        // PostgreSQL's pool, or SQLite's file closing: run in the node's service group.
        let services = store.services
        guard let redisURL = options.resolvedRedis else {
            return ExamBellBackends(
                store: store, state: MemoryStateStore(), queue: MemoryQueue(), events: MemoryQueue(stream: QueueStream.events), failures: failures,
                services: services, prepare: prepare
            )
        }
        let redis: RedisConfiguration
        do {
            redis = try RedisConfiguration(url: redisURL)
        } catch {
            throw ValidationError("--redis / EXAMBELL_REDIS_URL: \(error)")
        }
        let client = RedisClient(configuration: redis, logger: logger)
        logger.info("state store and queue on Redis", metadata: ["redis": "\(redis.description)"])
        return ExamBellBackends(
            store: store, state: RedisStateStore(client: client, failures: failures),
            queue: RedisStreamsQueue(client: client, failures: failures),
            events: RedisStreamsQueue(client: client, stream: QueueStream.events, failures: failures), failures: failures,
            services: services + [client], prepare: prepare
        )
    }
}

private func openSQLite(_ path: String, _ failures: BackendFailures, _ logger: Logger) async throws -> SQLExamStore {
    do {
        return try await SQLiteExamStore.open(path: path, failures: failures, logger: logger)
    } catch {
        throw ValidationError("Cannot open the SQLite database at \(path): \(error)")
    }
}

/// The admin token and session secret of `serve` when none is given: made once, kept in
/// the data directory (mode 0600) so that a restart keeps logins and browser sessions valid.
struct LocalSecrets: Codable {
    var adminToken: String
    var sessionSecret: String

    static func loadOrCreate(in directory: String) throws -> LocalSecrets {
        let url = URL(fileURLWithPath: directory).appendingPathComponent("secrets.json")
        if let data = try? Data(contentsOf: url), let secrets = try? JSONDecoder().decode(LocalSecrets.self, from: data) {
            return secrets
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let secrets = LocalSecrets(adminToken: SecretToken.random(), sessionSecret: SecretToken.random())
        // Readable by its owner only, from the moment it exists (not written, then chmod-ed).
        let data = try JSONEncoder().encode(secrets)
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { throw ValidationError("Cannot write \(url.path): \(String(cString: strerror(errno))).") }
        defer { close(fd) }
        fchmod(fd, 0o600)
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == data.count else { throw ValidationError("Cannot write \(url.path).") }
        return secrets
    }
}

/// A node that cannot start: said as it is, without a hint about ports.
struct StartupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
