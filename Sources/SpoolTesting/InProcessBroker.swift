import Foundation
import Logging
import Spool
import SpoolServer
import ZeroMQ

/// A real broker running inside the test process, on `inproc://` or a free loopback TCP port,
/// with its data in a temporary directory. Stop and start it again to test restarts: the data
/// directory (and, for TCP, the port) stays the same.
public final class InProcessBroker: Sendable {
    /// How clients reach the broker.
    public enum Transport: Sendable, CaseIterable, CustomStringConvertible {
        /// ZeroMQ's in-process transport (the SDK shares the process-wide ZeroMQ context).
        case inproc
        /// TCP on 127.0.0.1 with a port the OS picks.
        case tcp

        public var description: String { self == .inproc ? "inproc" : "tcp" }
    }

    /// The endpoint clients connect to.
    public let endpoint: String
    /// Where the broker keeps its data.
    public let dataDirectory: TemporaryDirectory
    /// The configuration the broker was started with.
    public let configuration: ServerConfiguration
    private let server: SpoolServer

    /// Starts a broker. `configure` may change any setting; the data directory and endpoint
    /// are filled in unless it sets them.
    public convenience init(transport: Transport = .inproc, logger: Logger = Logger(label: "spool.test-broker"),
                            configure: (inout ServerConfiguration) -> Void = { _ in }) throws {
        let directory = try TemporaryDirectory(prefix: "spool-broker")
        var configuration = ServerConfiguration()
        configuration.broker.dataDirectory = directory.path
        configuration.endpoint = transport == .inproc ? "inproc://spool-\(UUID().uuidString)" : "tcp://127.0.0.1:*"
        configure(&configuration)
        try self.init(configuration: configuration, dataDirectory: directory, logger: logger)
    }

    private init(configuration: ServerConfiguration, dataDirectory: TemporaryDirectory, logger: Logger) throws {
        (server, endpoint) = try Self.startServer(configuration: configuration, logger: logger)
        var resolved = configuration
        resolved.endpoint = endpoint
        self.configuration = resolved
        self.dataDirectory = dataDirectory
    }

    /// Starts a server. ZeroMQ closes a stopped server's listening socket on its own I/O thread a
    /// moment after `stop()` returns, so a restart on the same TCP port retries until it is free.
    private static func startServer(configuration: ServerConfiguration, logger: Logger) throws -> (SpoolServer, String) {
        for _ in 0..<50 {
            let server = SpoolServer(configuration: configuration, logger: logger)
            switch Result(catching: { () throws(SpoolServerError) in try server.start() }) {
            case .success(let endpoint):
                return (server, endpoint)
            case .failure(let error) where (error.cause as? ZeroMQError)?.errno == EADDRINUSE:
                Thread.sleep(forTimeInterval: 0.05)
            case .failure(let error):
                throw error
            }
        }
        let server = SpoolServer(configuration: configuration, logger: logger)
        return (server, try server.start())
    }

    /// Connects a client to this broker.
    public func makeClient(configuration: ClientConfiguration = ClientConfiguration()) async throws -> SpoolClient {
        try await SpoolClient(endpoint: endpoint, configuration: configuration)
    }

    /// Stops the broker gracefully (syncs and closes everything).
    public func stop() async {
        await server.stop()
    }

    /// Stops this broker and starts a new one on the same data directory and endpoint.
    public func restart(logger: Logger = Logger(label: "spool.test-broker")) async throws -> InProcessBroker {
        await stop()
        return try InProcessBroker(configuration: configuration, dataDirectory: dataDirectory, logger: logger)
    }
}
