import Foundation
import Logging
import Synchronization
import SpoolWire
import ZeroMQ

/// A reply from the broker: its header and the frames after it.
struct Reply: Sendable {
    let header: FrameHeader
    let frames: [Frame]
}

/// One DEALER connection to a broker, driven by an I/O thread that owns the socket.
///
/// Callers on any task enqueue a request under a lock and signal an eventfd; the thread sends
/// it, matches replies by correlation id and resumes the waiting continuation. A socket
/// monitor tells the thread when the connection drops (in-flight requests then fail with
/// `connectionLost`) or cannot be made (requests marked `failIfUnreachable` fail at once).
/// Thread-safe.
final class Connection: Sendable {
    let endpoint: String
    private let wakeup: WakeupSignal
    private let inbox = Mutex(Inbox())
    private let nextCorrelationID = Atomic<UInt64>(1)

    private struct Inbox {
        var requests: [Outgoing] = []
        var cancellations: [UInt64] = []
        var closing = false
    }

    private struct Outgoing {
        let id: UInt64
        let opCode: OpCode
        let frames: [[UInt8]]
        let deadline: Int64
        let failIfUnreachable: Bool
        /// Called once, with the reply or the failure, on the I/O thread (or on the sender's, when
        /// the client is closed already).
        let completion: @Sendable (Result<Reply, SpoolError>) -> Void

        func resume(_ result: Result<Reply, SpoolError>) { completion(result) }
    }

    private let curve: ClientCurve?

    init(endpoint: String, curve: ClientCurve?, logger: Logger) throws(SpoolError) {
        self.endpoint = endpoint
        self.curve = curve
        do {
            wakeup = try WakeupSignal()
        } catch {
            throw SpoolError(.connectionFailed, "cannot create the client's wake-up signal: \(error)", cause: error)
        }
        let thread = Thread { [self] in runLoop(logger: logger) }
        thread.name = "spool-client-io"
        thread.start()
    }

    /// Sends `body` as operation `opCode` and waits for the reply (or the timeout, a lost
    /// connection, cancellation, or `close`).
    func request(_ opCode: OpCode, _ body: [[UInt8]], timeout: Duration, failIfUnreachable: Bool = false) async throws(SpoolError) -> Reply {
        let id = makeRequestID()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let accepted = enqueue(id: id, opCode, body, timeout: timeout, failIfUnreachable: failIfUnreachable) {
                    continuation.resume(returning: $0)
                }
                if !accepted { continuation.resume(returning: .failure(closedError)) }
            }
        } onCancel: {
            cancel(id)
        }
        return try result.get()
    }

    /// A correlation id no other request of this connection has; for ``send(id:_:_:timeout:completion:)``
    /// by a caller that may ``cancel(_:)`` the request later.
    func makeRequestID() -> UInt64 {
        nextCorrelationID.wrappingAdd(1, ordering: .relaxed).oldValue
    }

    /// Cancels request `id`: its completion gets `cancelled`, whether it is still queued, waiting
    /// for its reply, or not even queued yet; nothing happens if it completed already.
    func cancel(_ id: UInt64) {
        inbox.withLock { $0.cancellations.append(id) }
        wakeup.signal()
    }

    /// Queues `body` as operation `opCode` and returns at once; `completion` is called once with
    /// the reply (or the timeout, a lost connection, or `close`), on the I/O thread: no task
    /// waits in between, so the reply is acted on in the wake-up that received it. `completion`
    /// must not block. Requests queued one after the other (under the caller's own lock, say)
    /// leave in that order. `id` (from ``makeRequestID()``) lets the caller cancel it. Returns
    /// false, without calling `completion`, if the client is closed.
    func send(id: UInt64? = nil, _ opCode: OpCode, _ body: [[UInt8]], timeout: Duration,
              completion: @escaping @Sendable (Result<Reply, SpoolError>) -> Void) -> Bool {
        enqueue(id: id ?? makeRequestID(), opCode, body, timeout: timeout, failIfUnreachable: false, completion: completion)
    }

    /// The error of a request made after ``close()``.
    var closedError: SpoolError { SpoolError(.clientClosed, "the client for \(endpoint) is closed") }

    private func enqueue(id: UInt64, _ opCode: OpCode, _ body: [[UInt8]], timeout: Duration, failIfUnreachable: Bool,
                         completion: @escaping @Sendable (Result<Reply, SpoolError>) -> Void) -> Bool {
        let header = FrameHeader(opCode: opCode, correlationID: id).encoded()
        let deadline = Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000) + timeout.wholeMilliseconds
        let outgoing = Outgoing(id: id, opCode: opCode, frames: [header] + body, deadline: deadline,
                                failIfUnreachable: failIfUnreachable, completion: completion)
        let accepted = inbox.withLock { inbox in
            guard !inbox.closing else { return false }
            inbox.requests.append(outgoing)
            return true
        }
        if accepted { wakeup.signal() }
        return accepted
    }

    /// Fails every waiting request with `clientClosed` and stops the I/O thread. Idempotent.
    func close() {
        inbox.withLock { $0.closing = true }
        wakeup.signal()
    }

    // MARK: The I/O thread

    private func runLoop(logger: Logger) {
        var pending: [UInt64: Outgoing] = [:]
        var cancelled: Set<UInt64> = []
        let socket: Socket
        let monitor: MonitorSocket
        do {
            socket = try Socket(type: .dealer)
            try socket.setSendHighWaterMark(100_000)
            try socket.setReceiveHighWaterMark(100_000)
            try socket.setReconnectInterval(milliseconds: 100, max: 2_000)
            if let curve { try socket.setCurveClient(serverKey: curve.serverPublicKey, keys: curve.keys) }
            monitor = try socket.monitor(events: [.handshakeSucceeded, .disconnected, .connectRetried, .handshakeFailedAuth,
                                                  .handshakeFailedProtocol, .handshakeFailedNoDetail])
            try socket.connect(endpoint)
        } catch {
            finish(pending: &pending, error: SpoolError(.connectionFailed, "cannot connect to \(endpoint): \(error.message)", cause: error))
            return
        }
        // Stop the monitor before its socket closes, or a late event can hang ZeroMQ's I/O thread.
        defer { try? socket.stopMonitor() }
        var everConnected = false
        var poller = Poller()
        let socketItem = poller.add(socket)
        let wakeupItem = poller.add(fileDescriptor: wakeup.fileDescriptor)
        let monitorItem = poller.add(monitor.socket)
        while true {
            let nextDeadline = pending.values.map(\.deadline).min()
            do {
                _ = try poller.poll(timeoutMilliseconds: nextDeadline.map { Int(max(0, $0 - Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000))) })
            } catch {
                finish(pending: &pending, error: SpoolError(.connectionLost, "client socket failed: \(error)", cause: error))
                return
            }
            if poller.isReadable(wakeupItem) { wakeup.drain() }
            let (requests, cancellations, closing) = inbox.withLock { inbox in
                defer { inbox.requests = []; inbox.cancellations = [] }
                return (inbox.requests, inbox.cancellations, inbox.closing)
            }
            if closing {
                pending.merge(requests.map { ($0.id, $0) }) { first, _ in first }
                finish(pending: &pending, error: SpoolError(.clientClosed, "the client for \(endpoint) was closed"))
                return
            }
            for request in requests {
                if cancelled.remove(request.id) != nil {
                    request.resume(.failure(SpoolError(.cancelled, "\(request.opCode) request was cancelled")))
                    continue
                }
                do {
                    var sent = try socket.send(request.frames, dontWait: true)
                    if !sent, endpoint.hasPrefix("inproc://") {
                        // inproc never reconnects by itself: once the broker's socket closed (an
                        // in-process restart) the pipe is gone and every send would fail. Connect
                        // again; ZeroMQ queues the request until the endpoint is bound.
                        try? socket.disconnect(endpoint)
                        try socket.connect(endpoint)
                        sent = try socket.send(request.frames, dontWait: true)
                    }
                    if sent {
                        pending[request.id] = request
                    } else {
                        request.resume(.failure(SpoolError(.timedOut, "the send queue to \(endpoint) is full")))
                    }
                } catch {
                    request.resume(.failure(SpoolError(.connectionLost, "send to \(endpoint) failed: \(error)", cause: error)))
                }
            }
            for id in cancellations {
                if let request = pending.removeValue(forKey: id) {
                    request.resume(.failure(SpoolError(.cancelled, "\(request.opCode) request was cancelled")))
                } else {
                    cancelled.insert(id)
                }
            }
            if poller.isReadable(monitorItem) {
                while let event = try? monitor.receiveEvent(dontWait: true) {
                    switch event.kind {
                    case .handshakeSucceeded:
                        everConnected = true
                        logger.debug("connected", metadata: ["endpoint": "\(endpoint)"])
                    case .disconnected:
                        logger.warning("connection lost; reconnecting", metadata: ["endpoint": "\(endpoint)"])
                        fail(&pending, error: SpoolError(.connectionLost, "connection to \(endpoint) lost while waiting for a reply")) { _ in true }
                    case .connectRetried where !everConnected:
                        fail(&pending, error: SpoolError(.connectionFailed, "cannot connect to \(endpoint): connection refused (is spoold running?)")) {
                            $0.failIfUnreachable
                        }
                    case .handshakeFailedAuth:
                        logger.error("the broker refused this client's CURVE key", metadata: ["endpoint": "\(endpoint)"])
                        fail(&pending, error: SpoolError(.notAuthorized, "\(endpoint) refused this client's CURVE key (ask for its public key to be admitted in curve.clients)")) { _ in true }
                    case .handshakeFailedProtocol, .handshakeFailedNoDetail:
                        let reason = curve == nil
                            ? "the broker requires CURVE (give the client a key file and the broker's public key)"
                            : "check the broker's public key, and that the broker has CURVE on"
                        logger.error("security handshake failed", metadata: ["endpoint": "\(endpoint)", "reason": "\(reason)"])
                        fail(&pending, error: SpoolError(.connectionFailed, "the security handshake with \(endpoint) failed: \(reason)")) { _ in true }
                    default:
                        break
                    }
                }
            }
            if poller.isReadable(socketItem) {
                while let frames = try? socket.receive(dontWait: true) {
                    guard let first = frames.first,
                          let header = try? first.withUnsafeBytes({ try FrameHeader.decode($0) }),
                          let request = pending.removeValue(forKey: header.correlationID)
                    else { continue }  // a late reply to a request that already timed out or failed
                    request.resume(.success(Reply(header: header, frames: Array(frames.dropFirst()))))
                }
            }
            let now = Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000)
            fail(&pending, error: nil) { $0.deadline <= now }
        }
    }

    /// Fails the pending requests matching `predicate`; a nil error means "timed out".
    private func fail(_ pending: inout [UInt64: Outgoing], error: SpoolError?, where predicate: (Outgoing) -> Bool) {
        for (id, request) in pending where predicate(request) {
            pending.removeValue(forKey: id)
            request.resume(.failure(error ?? SpoolError(.timedOut, "no reply to \(request.opCode) from \(endpoint) in time")))
        }
    }

    private func finish(pending: inout [UInt64: Outgoing], error: SpoolError) {
        let queued = inbox.withLock { inbox in
            inbox.closing = true
            defer { inbox.requests = [] }
            return inbox.requests
        }
        for request in queued { request.resume(.failure(error)) }
        fail(&pending, error: error) { _ in true }
    }
}

