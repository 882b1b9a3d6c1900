import ArgumentParser
import Foundation
import GRDB
import Logging
import ServiceLifecycle
import Spool
import SpoolSaga

/// How the services run the order saga.
public enum SagaMode: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Each service reacts to the events of the one before it (the default).
    case choreography
    /// The order service's orchestrator sends each step's command and waits for its reply.
    case orchestration
    /// The choreography's forward steps; a supervisor answers failures with declared rules.
    case supervised
    /// The choreography, with the order service event-sourced: its orders are the events of an
    /// aggregate on `order-events`, the saga's events are derived from them, and reads come from a
    /// projection (the other services run as in the choreography).
    case eventSourced = "event-sourced"

    /// Whether the services other than the order service react to each other's events as in the
    /// choreography (true but for the orchestration and the supervised mode).
    public var isChoreography: Bool { self == .choreography || self == .eventSourced }
}

/// The options every sample service takes.
public struct ServiceOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Broker endpoint (default: $SPOOL_BROKER or tcp://127.0.0.1:7070).", valueName: "endpoint"))
    public var broker: String?

    @Option(help: ArgumentHelp("The service's SQLite database (default: ./<service>.sqlite).", valueName: "path"))
    public var db: String?

    @Option(help: ArgumentHelp("Seed data (products, users) for a new database (default: the bundled seed.json).", valueName: "path"))
    public var seed: String?

    @Option(help: ArgumentHelp("Consumer-group session timeout in milliseconds: how soon a crashed instance's partitions move.", valueName: "ms"))
    public var sessionTimeoutMs: Int = 10_000

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    public var logLevel: String = "info"

    @Option(name: .customLong("mode"),
            help: "How the saga runs: choreography (events), orchestration (the order service's commands), supervised (events, and a supervisor answers failures) or event-sourced (the choreography, the order service event-sourced); every service of a run takes the same. Default: choreography.")
    var chosenMode: SagaMode?

    @Flag(help: "Shorthand for --mode event-sourced.")
    var eventSourced = false

    /// How the saga runs: `--mode`, `--event-sourced`, or the choreography.
    public var mode: SagaMode {
        eventSourced ? .eventSourced : chosenMode ?? .choreography
    }

    public init() {}

    public func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level '\(logLevel)'") }
        if eventSourced, let chosenMode, chosenMode != .eventSourced {
            throw ValidationError("--event-sourced contradicts --mode \(chosenMode.rawValue)")
        }
        guard (100...300_000).contains(sessionTimeoutMs) else { throw ValidationError("--session-timeout-ms must be 100…300000") }
    }

    /// The broker endpoint from the option, `SPOOL_BROKER`, or the embedded default.
    public var endpoint: String {
        broker ?? ProcessInfo.processInfo.environment["SPOOL_BROKER"] ?? "tcp://127.0.0.1:7070"
    }

    /// A logger at the chosen level, on standard error.
    public func logger(_ label: String) -> Logger {
        var logger = Logger(label: label, factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        return logger
    }
}

/// Opens (creating if needed) a service's SQLite database in WAL mode, with synchronous commits
/// (a committed transaction survives a crash of the process and of the machine).
public func openDatabase(at path: String) throws -> DatabasePool {
    var configuration = Configuration()
    configuration.busyMode = .timeout(5)
    configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
    return try DatabasePool(path: path, configuration: configuration)
}

/// Connects to the broker, retrying with backoff while it is not there yet (services may start
/// before the broker, or while it restarts). Returns nil if the task is cancelled first.
public func connectPatiently(to endpoint: String, logger: Logger) async -> SpoolClient? {
    var wait = Duration.milliseconds(100)
    while !Task.isCancelled {
        do {
            return try await SpoolClient(endpoint: endpoint, configuration: ClientConfiguration(connectTimeout: .seconds(2)), logger: logger)
        } catch {
            logger.warning("broker not reachable yet; retrying", metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
            try? await Task.sleep(for: wait)
            wait = Swift.min(wait * 2, .seconds(2))
        }
    }
    return nil
}

/// Runs a ``SagaParticipant`` (or the ``Orchestrator`` on one) as a ServiceLifecycle service:
/// graceful shutdown (SIGTERM/SIGINT) stops it after the record in hand.
public struct ParticipantService: Service {
    let body: @Sendable () async throws -> Void

    public init(_ participant: SagaParticipant) { body = participant.run }

    public init(_ orchestrator: Orchestrator) { body = orchestrator.run }

    public init(_ supervisor: Supervisor) { body = supervisor.run }

    /// Runs `body`, a participant's run loop and what runs next to it, until it returns or throws.
    public init(running body: @escaping @Sendable () async throws -> Void) { self.body = body }

    public func run() async throws {
        try await cancelWhenGracefulShutdown { try await body() }
    }
}

/// Runs a background loop as a service until graceful shutdown.
public struct LoopService: Service {
    let body: @Sendable () async -> Void

    public init(_ body: @escaping @Sendable () async -> Void) { self.body = body }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await body() }
    }
}

/// Runs `services` until SIGTERM or SIGINT, then shuts them down gracefully in reverse order.
public func runUntilSignalled(_ services: [any Service], logger: Logger) async throws {
    let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: services.map { .init(service: $0) },
                                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
}

/// What a started service works with.
public struct ServiceContext: Sendable {
    /// The service's database (its tables and the saga kit's).
    public var database: DatabasePool
    /// The saga participant, its handlers not yet registered.
    public var participant: SagaParticipant
    /// The seed the database was created from.
    public var seed: Seed
    /// The service's logger.
    public var logger: Logger
    /// How the saga runs (every service of a run takes the same).
    public var mode: SagaMode
}

/// Opens the database of service `name` (creating its tables with `prepare` from the seed),
/// connects to the broker (waiting for it), and returns the participant to register handlers on.
/// Returns nil if the task is cancelled while waiting for the broker.
public func startService(_ name: String, options: ServiceOptions,
                         prepare: (any DatabaseWriter, Seed) throws -> Void) async throws -> ServiceContext? {
    let logger = options.logger(name)
    let seed = try Seed.load(from: options.seed)
    let path = options.db ?? "\(name).sqlite"
    let database: DatabasePool
    do {
        database = try openDatabase(at: path)
        try prepare(database, seed)
    } catch let error as DatabaseError {
        throw ServiceError("database \(path): \(error.message ?? "\(error)")")
    }
    guard let client = await connectPatiently(to: options.endpoint, logger: logger) else { return nil }
    let configuration = SagaConfiguration(consumer: ConsumerConfiguration(sessionTimeout: .milliseconds(options.sessionTimeoutMs)))
    let participant = try SagaParticipant(name: name, client: client, database: database, configuration: configuration, logger: logger)
    logger.info("\(name) service ready", metadata: ["db": "\(path)", "broker": "\(options.endpoint)"])
    return ServiceContext(database: database, participant: participant, seed: seed, logger: logger, mode: options.mode)
}
