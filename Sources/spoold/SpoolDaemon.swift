import ArgumentParser
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Spool
import SpoolBroker
import SpoolConsole
import SpoolServer
import SpoolStorage
import ZeroMQ

/// `spoold`: the Spool broker daemon.
@main
struct SpoolDaemon: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spoold",
        abstract: "The Spool broker: topics with file-backed logs over ZeroMQ.",
        discussion: """
            With no options spoold runs on the embedded defaults: data in ./spool-data, \
            listening on tcp://127.0.0.1:7070, fsync: always. A YAML file (--config) and the \
            flags below override them, flags last; broker-config/spoold.yaml documents every key.
            SIGINT or SIGTERM stops it gracefully: every appended record is synced and acknowledged.

            Examples:
              spoold
              spoold --data-dir /var/lib/spool --listen tcp://0.0.0.0:7070
              spoold --config broker-config/spoold.yaml --log-level debug
            """,
        version: Broker.version
    )

    @Option(name: .shortAndLong, help: "YAML configuration file (see broker-config/spoold.yaml).")
    var config: String?

    @Option(help: "Endpoint to bind, e.g. tcp://127.0.0.1:7070. (key: listen)")
    var listen: String?

    @Option(help: "Directory for topics and logs. (key: data.dir)")
    var dataDir: String?

    @Option(help: "When appends reach the disk: always, interval or never. (key: fsync)")
    var fsync: String?

    @Option(help: "Sync interval in milliseconds for fsync: interval. (key: fsync.interval.ms)")
    var fsyncIntervalMs: Int?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical. (key: log.level)")
    var logLevel: String?

    @Option(help: "HTTP listener for metrics, health, admin API and console, host:port or off. (key: http.listen)")
    var httpListen: String?

    @Option(help: "Most descriptors the partitions' files hold open at once, or auto (half the open-file limit). (key: max.open.files)")
    var maxOpenFiles: String?

    func run() async throws {
        var settings = DaemonSettings()
        do throws(ConfigurationError) {
            if let config { try settings.load(yamlFile: config) }
            let flags: [(String, String?)] = [
                ("listen", listen), ("data.dir", dataDir), ("fsync", fsync),
                ("fsync.interval.ms", fsyncIntervalMs.map(String.init)), ("log.level", logLevel),
                ("http.listen", httpListen), ("max.open.files", maxOpenFiles),
            ]
            for case let (key, value?) in flags {
                do {
                    try settings.apply(key: key, value: ConfigurationValue(value))
                } catch {
                    throw ConfigurationError("--\(key.replacingOccurrences(of: ".", with: "-")): \(error.message)")
                }
            }
            try settings.checkCombinations()
        } catch {
            fail("configuration: \(error.message)")
        }
        let level = settings.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "spoold")
        if config == nil { logger.info("no --config given: running on the embedded defaults") }
        // Past the file-size limit (`ulimit -f`) the kernel kills the writer with SIGXFSZ; ignored,
        // the write fails with EFBIG instead, which refuses that produce with a clear error.
        signal(SIGXFSZ, SIG_IGN)
        checkOpenFileBudget(maxOpenFiles: settings.serverConfiguration.broker.maxOpenFiles, logger: logger)
        let metrics = Self.bootstrapMetrics(enabled: settings.metricsEnabled)
        var configuration = settings.serverConfiguration
        var console: (server: ConsoleServer, curve: ClientCurve?)?
        if let http = settings.http {
            var curve: ClientCurve?
            if let security = configuration.curve {
                // The listener reaches the broker as a client of its own, admitted by a key made now.
                guard let keys = try? CurveKeyPair.generate() else { fail("cannot generate the HTTP listener's CURVE key pair") }
                configuration.curve?.clients[keys.publicKey] = settings.httpPrincipal
                curve = ClientCurve(serverPublicKey: security.serverKeys.publicKey, keys: keys)
            }
            let facts = BrokerFacts(version: Broker.version, endpoint: configuration.endpoint, dataDirectory: configuration.broker.dataDirectory,
                                    fsync: "\(configuration.broker.log.fsync)", startedAt: Int64(Date().timeIntervalSince1970 * 1000))
            let server = ConsoleServer(configuration: http, facts: facts, metrics: metrics.console, registry: metrics.registry,
                                       logger: Logger(label: "spoold.http"))
            do throws(ConsoleError) {
                try await server.start()
            } catch {
                fail(error.message)
            }
            console = (server, curve)
        }
        let server = SpoolServer(configuration: configuration, logger: logger)
        let group = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // The port answers as soon as the server starts, before the group installs its signal
        // handlers: a SIGTERM or SIGINT in between must stop spoold gracefully too, not kill it.
        let earlySignals = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { Task { await group.triggerGracefulShutdown() } }
            source.resume()
            return source
        }
        let endpoint: String
        do throws(SpoolServerError) {
            endpoint = try server.start()
        } catch {
            fail(error.message)
        }
        if let console {
            let client = try await SpoolClient(endpoint: Self.reachable(endpoint), configuration: ClientConfiguration(curve: console.curve),
                                               logger: Logger(label: "spoold.http"))
            console.server.markReady(client: client, endpoint: endpoint)
        }
        try await group.run()
        earlySignals.forEach { $0.cancel() }
        await console?.server.stop()
    }

    /// Raises the soft open-file limit to the hard one and logs the budget: the partition logs'
    /// file cache (`max.open.files`) and what is left for client connections; warns, with the
    /// limit to set, when fewer than the reserve would be left.
    private func checkOpenFileBudget(maxOpenFiles: Int?, logger: Logger) {
        guard let limits = FileDescriptorBudget.raiseSoftLimit() else { return }
        let fileCache = maxOpenFiles ?? OpenFileCache.defaultCapacity
        let left = limits.soft - fileCache
        let metadata: Logger.Metadata = [
            "limit": "\(limits.soft)", "raisedFrom": "\(limits.previous == limits.soft ? "-" : String(limits.previous))",
            "hard": "\(limits.hard)", "maxOpenFiles": "\(fileCache)", "forClients": "\(left)",
        ]
        guard left >= FileDescriptorBudget.reserve else {
            logger.warning("the open-file limit is low: the partitions' file cache (max.open.files \(fileCache)) leaves \(max(left, 0)) descriptors for client connections and ZeroMQ, fewer than \(FileDescriptorBudget.reserve); raise the hard limit to at least \(fileCache + FileDescriptorBudget.reserve) (ulimit -Hn, or LimitNOFILE in spoold.service) or lower max.open.files", metadata: metadata)
            return
        }
        logger.info("open-file budget", metadata: metadata)
    }

    /// Bootstraps swift-metrics once for the process: Prometheus (served at `/metrics`) and the
    /// console's running totals see every value. Disabled, nothing is recorded (the no-op backend).
    private static func bootstrapMetrics(enabled: Bool) -> (registry: PrometheusCollectorRegistry, console: ConsoleMetrics) {
        let registry = PrometheusCollectorRegistry()
        guard enabled else { return (registry, ConsoleMetrics()) }
        var prometheus = PrometheusMetricsFactory(registry: registry)
        // Local disks sync in 0.1–10 ms and requests take microseconds: finer buckets than the default.
        let fine: [Duration] = [.microseconds(10), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
                                .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                                .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5)]
        for name in ["spool_fsync_duration_seconds", "spool_request_duration_seconds", "spool_produce_ack_seconds"] {
            prometheus.durationHistogramBuckets[name] = fine
        }
        prometheus.valueHistogramBuckets["spool_sync_records"] = [1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10_000, 100_000]
        let console = ConsoleMetrics()
        MetricsSystem.bootstrap(MultiplexMetricsHandler(factories: [prometheus, console]))
        return (registry, console)
    }

    /// An endpoint a local client can connect to for the bound `endpoint` (a wildcard address becomes loopback).
    static func reachable(_ endpoint: String) -> String {
        endpoint.replacingOccurrences(of: "tcp://0.0.0.0:", with: "tcp://127.0.0.1:")
            .replacingOccurrences(of: "tcp://[::]:", with: "tcp://[::1]:")
    }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("spoold: error: \(message)\n".utf8))
        Foundation.exit(1)
    }
}
