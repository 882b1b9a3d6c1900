import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import SpoolBroker
import ZeroMQ

/// Runs a ``SpoolBroker/Broker`` behind a ZeroMQ ROUTER socket on a thread of its own.
///
/// The network thread owns the socket and the broker; a group-commit flusher thread syncs
/// files and hands results back through a wake-up signal the network loop polls. Use it as a
/// `Service` in a `ServiceGroup` (graceful shutdown stops it), or call ``start()`` and
/// ``stop()`` directly (tests, embedding). Thread-safe.
public final class SpoolServer: Service, Sendable {
    /// The configuration it runs with.
    public let configuration: ServerConfiguration
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var phase = Phase.idle
        var boundEndpoint: String?
        var stopSignal: WakeupSignal?
        var stopRequested = false
        var finishWaiters: [CheckedContinuation<Void, Never>] = []
        var failure: SpoolServerError?
    }

    private enum Phase { case idle, running, stopped }

    public init(configuration: ServerConfiguration = ServerConfiguration(), logger: Logger = Logger(label: "spool.server")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// The endpoint actually bound (with the real port for `tcp://…:*`), once started.
    public var boundEndpoint: String? { state.withLock { $0.boundEndpoint } }

    /// Opens storage, binds the socket and starts the network thread; returns the bound
    /// endpoint. Throws if the data directory is locked or unreadable or the bind fails.
    /// A server starts once.
    @discardableResult
    public func start() throws(SpoolServerError) -> String {
        try state.withLock { state throws(SpoolServerError) in
            guard state.phase == .idle else { throw SpoolServerError("the server was already started") }
            state.phase = .running
        }
        let started = StartupResult()
        let thread = Thread { [self] in
            let loop: NetworkLoop
            do throws(SpoolServerError) {
                loop = try NetworkLoop(configuration: configuration, logger: logger)
            } catch {
                started.set(.failure(error))
                finish(failure: nil)
                return
            }
            state.withLock {
                $0.boundEndpoint = loop.boundEndpoint
                $0.stopSignal = loop.wakeup
            }
            started.set(.success(loop.boundEndpoint))
            var failure: SpoolServerError?
            do throws(SpoolServerError) {
                try loop.run(shouldStop: { state.withLock { $0.stopRequested } })
            } catch {
                logger.critical("network loop failed", metadata: ["error": "\(error)"])
                failure = error
            }
            loop.shutdown()
            finish(failure: failure)
        }
        thread.name = "spool-network"
        thread.start()
        let endpoint = try started.wait().get()
        logger.info("listening", metadata: ["endpoint": "\(endpoint)", "data": "\(configuration.broker.dataDirectory)",
                                            "fsync": "\(configuration.broker.log.fsync)"])
        return endpoint
    }

    /// Stops gracefully: no new requests are read, parked fetches are answered, every appended
    /// byte is synced and acknowledged, files are closed. Returns when the network thread has
    /// finished. Idempotent; safe from any thread.
    public func stop() async {
        requestStop()
        await waitUntilFinished()
    }

    /// Runs until graceful shutdown (as a `Service`), then stops as ``stop()`` does.
    public func run() async throws {
        if state.withLock({ $0.phase == .idle }) { try start() }
        await withGracefulShutdownHandler {
            await waitUntilFinished()
        } onGracefulShutdown: {
            self.requestStop()
        }
        if let failure = state.withLock({ $0.failure }) { throw failure }
    }

    private func requestStop() {
        let signal = state.withLock { state -> WakeupSignal? in
            state.stopRequested = true
            return state.stopSignal
        }
        signal?.signal()
    }

    private func waitUntilFinished() async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Bool in
                guard state.phase == .running else { return true }
                state.finishWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    private func finish(failure: SpoolServerError?) {
        let waiters = state.withLock { state in
            state.phase = .stopped
            state.failure = failure
            state.stopSignal = nil
            defer { state.finishWaiters = [] }
            return state.finishWaiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// A one-shot hand-over of the start-up outcome from the network thread to ``SpoolServer/start()``.
private final class StartupResult: Sendable {
    private let result = Mutex<Result<String, SpoolServerError>?>(nil)
    private let ready = DispatchSemaphore(value: 0)

    func set(_ value: Result<String, SpoolServerError>) {
        result.withLock { $0 = value }
        ready.signal()
    }

    func wait() -> Result<String, SpoolServerError> {
        ready.wait()
        return result.withLock { $0! }
    }
}
