import Logging
import ServiceLifecycle

/// A socket node's graceful shutdown (SIGTERM): closes every browser with close code 1012
/// so that it reconnects, through the load balancer, to another node, and waits (bounded)
/// until they have gone. It runs before the HTTP server's own shutdown, which would
/// otherwise close them with a plain 1000.
package struct SocketDrain: Service {
    package let hub: SocketHub
    package let logger: Logger
    /// How long to wait for browsers to go before the server closes what is left.
    package var limit: Duration = .seconds(5)

    package init(hub: SocketHub, logger: Logger, limit: Duration = .seconds(5)) {
        self.hub = hub
        self.logger = logger
        self.limit = limit
    }

    package func run() async throws {
        do {
            try await gracefulShutdown()
        } catch {
            return  // cancelled: the process is going away without a graceful stop
        }
        let count = hub.drain(closeCode: SocketServer.restartCloseCode, reason: "node restarting; reconnect")
        logger.info("closing browsers so they reconnect to another node", metadata: ["browsers": "\(count)"])
        let deadline = ContinuousClock.now + limit
        while hub.connectionCount > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
