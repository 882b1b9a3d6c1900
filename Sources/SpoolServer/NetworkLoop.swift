import Foundation
import Logging
import Metrics
import Synchronization
import SpoolBroker
import SpoolStorage
import SpoolWire
import ZeroMQ

extension Frame: RequestFrame {}

/// The network thread's loop: owns the ROUTER socket and the broker, moves bytes between
/// them, hands sync work to the flusher and turns its results into acknowledgements.
/// Created, run and shut down on one thread.
final class NetworkLoop {
    /// Most messages read per wake-up before timers and syncs get a turn.
    private static let receiveBurst = 1024
    /// Record bytes of replies after which a burst ends early, so that one client reading a
    /// backlog in large fetches delays others' acknowledgements by about one reply, not a burst.
    private static let burstReplyBytes = 1 << 20

    let boundEndpoint: String
    /// Wakes the loop: signalled by the flusher (sync done) and by ``SpoolServer/stop()``.
    let wakeup: WakeupSignal
    private let router: Socket
    /// The ZAP handler that admits CURVE clients by key; nil without CURVE.
    private let zapHandler: Socket?
    private let admittedClients: [String: String]
    private let broker: Broker
    private let flusher: GroupCommitFlusher<SyncKey>
    private let completedSyncs: SyncCompletions
    private let cleaner: CleanerThread
    private let logger: Logger
    /// Connection events of the ROUTER socket (accepted, disconnected), for `spool_connected_clients`.
    private let connections: MonitorSocket
    private var connectedClients = 0
    private let connectedClientsGauge = Gauge(label: "spool_connected_clients")
    private let curveRefusals = Counter(label: "spool_curve_refusals_total")

    init(configuration: ServerConfiguration, logger: Logger) throws(SpoolServerError) {
        self.logger = logger
        do {
            broker = try Broker(configuration: configuration.broker, logger: logger)
        } catch {
            throw SpoolServerError("cannot open data directory \(configuration.broker.dataDirectory): \(error.message)", cause: error)
        }
        guard configuration.curve != nil || configuration.isLocalOnly || configuration.allowPlaintextNetwork else {
            _ = broker.close()
            throw SpoolServerError("refusing to listen on \(configuration.endpoint) without CURVE: configure curve.server.key.file and curve.clients, listen on loopback, or set allow.plaintext.network: true")
        }
        do {
            // With CURVE the router gets a context of its own: a context has one ZAP handler.
            let context = configuration.curve == nil ? Context.shared : try Context()
            if let curve = configuration.curve {
                let zap = try Socket(context: context, type: .rep)
                try zap.bind(ZAPRequest.endpoint)
                zapHandler = zap
                admittedClients = curve.clients
            } else {
                zapHandler = nil
                admittedClients = [:]
            }
            router = try Socket(context: context, type: .router)
            if let curve = configuration.curve { try router.setCurveServer(curve.serverKeys, zapDomain: "spool") }
            try router.setRouterMandatory(true)
            try router.setMaxMessageSize(configuration.maxFrameBytes)
            try router.setSendHighWaterMark(configuration.highWaterMark)
            try router.setReceiveHighWaterMark(configuration.highWaterMark)
            try router.bind(configuration.endpoint)
            boundEndpoint = try router.lastEndpoint
            wakeup = try WakeupSignal()
            // Last: once it exists, `shutdown()` must stop it (libzmq issue 3575, see `Socket.stopMonitor()`).
            connections = try router.monitor(events: [.accepted, .disconnected])
        } catch {
            _ = broker.close()
            throw SpoolServerError("cannot listen on \(configuration.endpoint): \(error.message)", cause: error)
        }
        if configuration.curve != nil {
            logger.info("CURVE on: encrypted, clients admitted by key", metadata: ["clients": "\(admittedClients.count)"])
        } else {
            logger.notice("CURVE off: plaintext, no client authentication", metadata: [
                "endpoint": "\(configuration.endpoint)", "reachable": "\(configuration.isLocalOnly ? "from this machine only" : "from the network")",
            ])
        }
        let completions = SyncCompletions()
        let wakeup = self.wakeup
        completedSyncs = completions
        flusher = GroupCommitFlusher { results in
            completions.append(results)
            wakeup.signal()
        }
        cleaner = CleanerThread(wakeup: wakeup)
    }

    /// Serves requests until `shouldStop` says so. Throws only if the socket itself fails.
    func run(shouldStop: () -> Bool) throws(SpoolServerError) {
        var poller = Poller()
        let routerItem = poller.add(router)
        let wakeupItem = poller.add(fileDescriptor: wakeup.fileDescriptor)
        let zapItem = zapHandler.map { poller.add($0) }
        let connectionsItem = poller.add(connections.socket)
        connectedClientsGauge.record(0)
        while !shouldStop() {
            let deadline = min(broker.nextDeadline ?? .max, broker.nextMetricsRefresh)
            let timeout = Int(max(0, deadline - Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000)))
            do {
                _ = try poller.poll(timeoutMilliseconds: timeout)
                if poller.isReadable(wakeupItem) { wakeup.drain() }
                deliverCompletedSyncs()
                if let (key, result) = cleaner.takeFinished() { broker.finishCleaning(key, result) }
                if let zapItem, poller.isReadable(zapItem) { try answerZAPRequests() }
                if poller.isReadable(connectionsItem) { try countConnections() }
                if poller.isReadable(routerItem) { try receiveRequests() }
            } catch {
                throw SpoolServerError("network loop failed: \(error)", cause: error)
            }
            let now = Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000)
            send(broker.expireParkedFetches(now: now))
            broker.expireGroupSessions(now: now)
            broker.refreshMetrics(now: now)
            broker.enforceRetention(now: now, wallClockMilliseconds: Int64(Date().timeIntervalSince1970 * 1000))
            if let (key, pass) = broker.takeCleaningPass(now: now, wallClockMilliseconds: Int64(Date().timeIntervalSince1970 * 1000)) {
                cleaner.start(pass, for: key)
            }
            for (key, work) in broker.takeSyncWork(now: now) { flusher.submit(work, for: key) }
        }
    }

    /// Graceful end: answers parked fetches, syncs everything, acknowledges, closes.
    func shutdown() {
        // A monitor whose receiver goes away first would block libzmq's I/O thread for good.
        try? router.stopMonitor()
        cleaner.stop()
        if let (key, result) = cleaner.takeFinished() { broker.finishCleaning(key, result) }
        let (actions, work) = broker.beginShutdown()
        send(actions)
        for (key, item) in work { flusher.submit(item, for: key) }
        flusher.shutdown()
        deliverCompletedSyncs()
        send(broker.close())
        try? router.setLinger(milliseconds: 1000)  // let the last acknowledgements leave
        logger.info("stopped")
    }

    /// Admits a CURVE client whose public key is configured (its name becomes the connection's
    /// user id) and refuses any other, logging both.
    private func answerZAPRequests() throws(ZeroMQError) {
        guard let zapHandler else { return }
        while let frames = try zapHandler.receive(dontWait: true) {
            guard let request = ZAPRequest(frames: frames) else {
                logger.warning("ignored a malformed ZAP request")
                continue
            }
            let name = request.curvePublicKey.flatMap { admittedClients[$0] }
            if let name {
                logger.info("admitted a client", metadata: ["client": "\(name)", "address": "\(request.address)"])
            } else {
                curveRefusals.increment()
                logger.warning("refused a client: its key is not admitted", metadata: [
                    "address": "\(request.address)", "mechanism": "\(request.mechanism)", "key": "\(request.curvePublicKey ?? "none")",
                ])
            }
            _ = try zapHandler.send(request.reply(admit: name != nil, statusText: name == nil ? "key not admitted" : "OK", userID: name ?? ""))
        }
    }

    /// Follows connections accepted and closed (`spool_connected_clients`).
    private func countConnections() throws(ZeroMQError) {
        while let event = try connections.receiveEvent(dontWait: true) {
            if event.kind == .accepted { connectedClients += 1 }
            if event.kind == .disconnected { connectedClients = max(0, connectedClients - 1) }
        }
        connectedClientsGauge.record(connectedClients)
    }

    private func receiveRequests() throws(ZeroMQError) {
        var replyBytes = 0
        for _ in 0..<NetworkLoop.receiveBurst where replyBytes < NetworkLoop.burstReplyBytes {
            guard let frames = try router.receive(dontWait: true) else { return }
            guard frames.count >= 2 else { continue }
            let client = ClientID(frames[0].bytes)
            // The name ZAP gave the connection's CURVE key; every frame of it carries it.
            let identity = zapHandler == nil ? nil : frames[1].property("User-Id").flatMap { $0.isEmpty ? nil : $0 }
            replyBytes += send(broker.handle(client: client, identity: identity, frames: Array(frames.dropFirst()),
                                             now: Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000)))
        }
    }

    private func deliverCompletedSyncs() {
        let now = Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000)
        for (key, result) in completedSyncs.take() {
            send(broker.syncCompleted(key, result: result, now: now))
        }
    }

    /// Sends the replies; returns the record bytes they carry. Replies carrying the same log
    /// slices (consumers of one partition woken by one produce) share one read of them: libzmq
    /// sends the one frame to each by reference count.
    @discardableResult
    private func send(_ actions: [BrokerAction]) -> Int {
        var sliceFrames: [[LogSlice]: Frame] = [:]
        var recordBytes = 0
        for case .reply(let client, let replyFrames) in actions {
            do {
                var frames = [Frame(client.bytes)]
                for frame in replyFrames {
                    switch frame {
                    case .bytes(let bytes): frames.append(Frame(bytes))
                    case .logSlices(let slices):
                        let shared = try sliceFrames[slices] ?? Frame(capacity: slices.reduce(0) { $0 + $1.length }) {
                            try LogSlice.read(slices, into: $0)
                        }
                        sliceFrames[slices] = shared
                        frames.append(shared)
                        recordBytes += shared.count
                    }
                }
                if try !router.send(frames, dontWait: true) {
                    logger.warning("dropped a reply: the client is not reading", metadata: ["client": "\(client.bytes)"])
                }
            } catch let error as ZeroMQError where error.isHostUnreachable {
                logger.debug("dropped a reply: the client went away")
            } catch {
                logger.error("could not send a reply", metadata: ["error": "\(error)"])
            }
        }
        return recordBytes
    }
}

/// Sync results handed from the flusher thread to the network thread.
/// Runs the log cleaner's passes, one at a time, on a thread of their own, and hands each
/// result back to the loop through the wake-up signal.
private final class CleanerThread: Sendable {
    private let queue = DispatchQueue(label: "spool.log-cleaner", qos: .utility)
    private let wakeup: WakeupSignal
    private let isStopping = Atomic<Bool>(false)
    private let finished = Mutex<(key: PartitionKey, result: Result<CleanedSegments, StorageError>)?>(nil)

    init(wakeup: WakeupSignal) { self.wakeup = wakeup }

    /// Runs `pass` for `key` in the background.
    func start(_ pass: LogCleaning, for key: PartitionKey) {
        queue.async { [self] in
            let result = Result { () throws(StorageError) in try pass.run { self.isStopping.load(ordering: .relaxed) } }
            finished.withLock { $0 = (key, result) }
            wakeup.signal()
        }
    }

    /// The result of the pass that ended, once.
    func takeFinished() -> (key: PartitionKey, result: Result<CleanedSegments, StorageError>)? {
        finished.withLock { finished in
            defer { finished = nil }
            return finished
        }
    }

    /// Stops a running pass (it ends at its next batch) and waits for it.
    func stop() {
        isStopping.store(true, ordering: .relaxed)
        queue.sync {}
    }
}

private final class SyncCompletions: Sendable {
    private let items = Mutex<[(key: SyncKey, result: Result<Int64, StorageError>)]>([])

    func append(_ results: [(key: SyncKey, result: Result<Int64, StorageError>)]) {
        items.withLock { $0.append(contentsOf: results) }
    }

    func take() -> [(key: SyncKey, result: Result<Int64, StorageError>)] {
        items.withLock { items in
            defer { items = [] }
            return items
        }
    }
}

