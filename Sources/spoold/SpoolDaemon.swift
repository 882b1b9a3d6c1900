import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SpoolBroker
import SpoolServer

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

    func run() async throws {
        var settings = DaemonSettings()
        do throws(ConfigurationError) {
            if let config { try settings.load(yamlFile: config) }
            let flags: [(String, String?)] = [
                ("listen", listen), ("data.dir", dataDir), ("fsync", fsync),
                ("fsync.interval.ms", fsyncIntervalMs.map(String.init)), ("log.level", logLevel),
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
        let server = SpoolServer(configuration: settings.serverConfiguration, logger: logger)
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
        do throws(SpoolServerError) {
            try server.start()
        } catch {
            fail(error.message)
        }
        try await group.run()
        earlySignals.forEach { $0.cancel() }
    }

    private func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("spoold: error: \(message)\n".utf8))
        Foundation.exit(1)
    }
}
