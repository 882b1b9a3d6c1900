import SpoolTesting
import Foundation
import Logging
import Spool

/// One `spoold` on a data directory and a loopback port, started, killed and restarted as the
/// test says. Call ``cleanUp()`` in a `defer`: it SIGKILLs a daemon that is still running.
final class Daemon: @unchecked Sendable {
    let dataDirectory: String
    let extraArguments: [String]
    /// A command `spoold` runs under (`prlimit --fsize=… --`), or empty.
    let launcher: [String]
    /// The CURVE settings of the readiness probe, for a daemon with CURVE on.
    let probeCurve: ClientCurve?
    private(set) var port: Int
    /// Every run so far, the current one last.
    private(set) var runs: [ChildProcess] = []

    var endpoint: String { "tcp://127.0.0.1:\(port)" }
    var current: ChildProcess? { runs.last }
    /// Standard error of the current run.
    var stderr: String { current?.stderr.text ?? "" }

    private init(dataDirectory: String, extraArguments: [String], launcher: [String], probeCurve: ClientCurve?, port: Int) {
        self.dataDirectory = dataDirectory
        self.extraArguments = extraArguments
        self.launcher = launcher
        self.probeCurve = probeCurve
        self.port = port
    }

    /// Starts `spoold --listen tcp://127.0.0.1:<free port> --data-dir <dataDirectory> <extraArguments>`
    /// and waits until a client (with `probeCurve`, for a daemon with CURVE on) can connect. Picks
    /// another port if the chosen one was taken meanwhile. With a `launcher`, runs
    /// `<launcher…> spoold …` instead (the launcher must exec spoold, so signals reach it).
    static func start(dataDirectory: String, extraArguments: [String] = [], launcher: [String] = [],
                      probeCurve: ClientCurve? = nil) async throws -> Daemon {
        let daemon = Daemon(dataDirectory: dataDirectory, extraArguments: extraArguments, launcher: launcher, probeCurve: probeCurve,
                            port: try freeLoopbackPort())
        for attempt in 1...5 {
            do {
                try await daemon.start()
                return daemon
            } catch is PortBusy where attempt < 5 {
                daemon.port = try freeLoopbackPort()
            } catch {
                daemon.cleanUp()
                throw error
            }
        }
        throw HarnessError("no free port after 5 attempts")
    }

    private struct PortBusy: Error {}

    /// Starts the daemon again on the same data directory and port and waits until it answers.
    func start() async throws {
        guard current?.isRunning != true else { throw HarnessError("spoold is already running") }
        var lastStderr = ""
        for attempt in 1...5 {
            let arguments = withoutDefaultHTTP(["--listen", endpoint, "--data-dir", dataDirectory] + extraArguments)
            let child = try launcher.isEmpty ? ChildProcess(try Binaries.spoold, arguments)
                                             : ChildProcess(launcher[0], Array(launcher.dropFirst()) + [try Binaries.spoold] + arguments)
            runs.append(child)
            switch await waitUntilReady(child) {
            case .ready:
                return
            case .exited(let termination):
                await child.waitForOutput()
                lastStderr = child.stderr.text
                if lastStderr.contains("cannot listen") {
                    // The port is briefly unavailable (or was taken): try again.
                    if attempt == 1, runs.count == 1 { throw PortBusy() }
                    try await Task.sleep(for: .milliseconds(200))
                    continue
                }
                throw HarnessError("spoold exited during start-up (\(termination)): \(lastStderr)")
            case .timedOut(let lastError):
                child.killAndReap()
                throw HarnessError("spoold did not answer on \(endpoint) within 60 s (last attempt: \(lastError)): \(child.stderr.text)")
            }
        }
        throw HarnessError("spoold could not listen on \(endpoint): \(lastStderr)")
    }

    private enum Readiness { case ready, exited(Termination), timedOut(String) }

    /// Polls by connecting a client until one connects, the process exits, or 60 s pass.
    private func waitUntilReady(_ child: ChildProcess) async -> Readiness {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        let quiet = Logger(label: "spool.test.probe", factory: { _ in SwiftLogNoOpLogHandler() })
        var lastError = "none"
        while clock.now < deadline {
            if let termination = child.termination { return .exited(termination) }
            do {
                let client = try await SpoolClient(endpoint: endpoint, configuration: ClientConfiguration(connectTimeout: .seconds(1), curve: probeCurve),
                                                   logger: quiet)
                client.close()
                return .ready
            } catch {
                lastError = "\(error)"
            }
            if let termination = child.termination { return .exited(termination) }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return .timedOut(lastError)
    }

    /// A client of the running daemon (quiet logger, the given settings).
    func makeClient(_ configuration: ClientConfiguration = ClientConfiguration()) async throws -> SpoolClient {
        try await SpoolClient(endpoint: endpoint, configuration: configuration,
                              logger: Logger(label: "spool.test.client", factory: { _ in SwiftLogNoOpLogHandler() }))
    }

    /// `kill -9` and wait until it is gone.
    @discardableResult
    func kill9() async throws -> Termination {
        try await stop(with: SIGKILL)
    }

    /// SIGTERM (graceful shutdown) and wait, bounded, until it has exited.
    @discardableResult
    func terminate() async throws -> Termination {
        try await stop(with: SIGTERM)
    }

    private func stop(with signal: Int32) async throws -> Termination {
        guard let child = current else { throw HarnessError("spoold was never started") }
        child.send(signal)
        guard let termination = await child.waitForExit(timeout: .seconds(60)) else {
            child.killAndReap()
            throw HarnessError("spoold did not exit within 60 s of signal \(signal): \(child.stderr.text)")
        }
        await child.waitForOutput()
        return termination
    }

    /// Kills every run still alive. Safe to call more than once.
    func cleanUp() {
        for run in runs { run.killAndReap() }
    }
}
