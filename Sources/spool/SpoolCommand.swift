import ArgumentParser
import Foundation
import Logging
import Spool

/// `spool`: publish, tail and replay topics of a Spool broker.
@main
struct SpoolCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spool",
        abstract: "Publish, tail, replay and copy the topics of a Spool broker; manage topics and consumer groups; trace sagas; benchmark.",
        discussion: """
            The broker is tcp://127.0.0.1:7070 unless --broker or SPOOL_BROKER says otherwise; \
            with CURVE on, --key-file and --server-key (or SPOOL_KEY_FILE, SPOOL_SERVER_KEY).
            Colour only on a terminal, never when NO_COLOR is set.
            Exit codes: 0 success (also Ctrl-C of a following tail), 1 an error the one-line \
            message (spool: error: ...) explains, 64 bad usage (unknown flag, bad value).
            Shell completion: spool --generate-completion-script bash|zsh|fish.

            Examples:
              spool publish orders --key order-1 '{"id":1}'
              spool tail orders --from-beginning
              spool replay orders.dlq --from beginning --to orders
              spool topics describe orders
              spool groups reset audit --topic orders --to-earliest --execute
              spool saga trace order-42
            """,
        version: "0.1.0",
        subcommands: [Publish.self, Tail.self, Replay.self, Events.self, Topics.self, Groups.self, Saga.self, Bench.self, Keys.self]
    )
}

/// Options every command shares.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Broker endpoint (default: $SPOOL_BROKER or tcp://127.0.0.1:7070).", valueName: "endpoint"))
    var broker: String?

    @Option(name: .long, help: ArgumentHelp("This client's CURVE secret key file, from `spool keys generate` (default: $SPOOL_KEY_FILE).", valueName: "path"))
    var keyFile: String?

    @Option(name: .long, help: ArgumentHelp("The broker's CURVE public key, or its .pub file (default: $SPOOL_SERVER_KEY).", valueName: "key"))
    var serverKey: String?

    var endpoint: String {
        broker ?? ProcessInfo.processInfo.environment["SPOOL_BROKER"] ?? "tcp://127.0.0.1:7070"
    }

    /// The CURVE settings from the options or the environment; nil when neither names a key.
    func curve() throws -> ClientCurve? {
        let environment = ProcessInfo.processInfo.environment
        let keyFile = keyFile ?? environment["SPOOL_KEY_FILE"]
        let serverKey = serverKey ?? environment["SPOOL_SERVER_KEY"]
        switch (keyFile, serverKey) {
        case (nil, nil):
            return nil
        case (let keyFile?, let serverKey?):
            do throws(KeyFileError) {
                return ClientCurve(serverPublicKey: try CurveKeyPair.publicKey(fileOrKey: serverKey), keys: try CurveKeyPair(keyFile: keyFile))
            } catch {
                throw ValidationError(error.message)
            }
        default:
            throw ValidationError("CURVE needs both --key-file (or SPOOL_KEY_FILE) and --server-key (or SPOOL_SERVER_KEY)")
        }
    }

    /// Checks `topic` locally (if given), then connects; either failure becomes the CLI's one-line error.
    func connect(for topic: String? = nil) async throws -> SpoolClient {
        let curve = try curve()
        return try await reportingErrors {
            if let topic { try SpoolClient.checkTopicName(topic) }
            // Failures reach the user as one-line errors; the SDK's own log lines would only repeat them.
            return try await SpoolClient(endpoint: endpoint, configuration: ClientConfiguration(connectTimeout: .seconds(3), curve: curve),
                                         logger: Logger(label: "spool", factory: { _ in SwiftLogNoOpLogHandler() }))
        }
    }
}

/// Runs `body`; a ``SpoolError`` becomes `spool: error: <message>` on stderr and exit code 1.
func reportingErrors<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as SpoolError {
        writeErrorLine(error.message)
        throw ExitCode.failure
    }
}

/// Prints a one-line error and exits with code 1.
func fail(_ message: String) -> Never {
    writeErrorLine(message)
    exit(1)
}

/// `spool: error: <message>` on standard error, the prefix in red on a terminal.
func writeErrorLine(_ message: String) {
    Terminal.writeError("\(Terminal.paint("spool: error:", .red, enabled: Terminal.colours(STDERR_FILENO))) \(message)\n")
}
