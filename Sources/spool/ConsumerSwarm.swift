import Dispatch
import Glibc
import Spool
import SpoolWire
import Synchronization
import ZeroMQ

/// One consumer of a ``ConsumerSwarm``: the partition it reads and the offset of its next fetch.
struct SwarmConsumer: Sendable {
    let topic: String
    let partition: Int32
    var offset: Int64
}

/// What a ``ConsumerSwarm`` does with the fetch replies; runs on the swarm's thread only.
protocol SwarmHandler: Sendable {
    /// Handles a fetch reply of consumer `consumer`, which asked from `requested`: `batches` holds
    /// whole record batches (the first may start before `requested`), `next` is the offset after
    /// the last of them (`requested` if none), `logEnd` the partition's visible end, `time` the
    /// monotonic nanoseconds when the reply was taken off the socket. Returns the offset of the
    /// consumer's next fetch; a failure stops the swarm.
    mutating func received(consumer: Int, requested: Int64, batches: UnsafeRawBufferPointer, next: Int64, logEnd: Int64,
                           at time: UInt64) throws(BenchFailure) -> Int64

    /// The swarm failed: release whoever waits for this handler's progress, with `failure`.
    func abandon(_ failure: BenchFailure)
}

/// Many consumers of the broker, each with a DEALER connection of its own and one fetch in flight
/// at a time (a long poll, like the SDK's record streams), all driven by one thread of this
/// process with `SpoolWire` fetch requests: the broker sees N clients, this process spends one
/// thread in all and about two descriptors per client.
///
/// Why not N ``SpoolClient``s: each has an I/O thread, an eventfd and a socket monitor (two more
/// ZeroMQ sockets). 1,000 of them are 1,000 threads that one record wakes at once, on cores the
/// broker needs too, and 3,000 sockets, beyond one ZeroMQ context's default limit: the figures
/// would measure the SDK's thread hand-offs rather than the broker.
final class ConsumerSwarm: Sendable {
    /// Consumers per ZeroMQ context: libzmq allows 1,023 sockets per context by default.
    static let consumersPerContext = 512
    /// Most a waiting phase lasts before the swarm gives up on the broker.
    static let silenceLimitMilliseconds = 60_000

    let endpoint: String
    let curve: ClientCurve?
    /// Every consumer got the answer to a fetch that does not wait: all connections are up
    /// (only with `warmUp`).
    let connected = Gate()
    /// Fetch replies received so far, for progress lines.
    var repliesReceived: Int { replies.load(ordering: .relaxed) }

    private let replies = Atomic<Int>(0)
    private let stopSignal: WakeupSignal
    private let stopping = Atomic<Bool>(false)
    private let polling = DispatchSemaphore(value: 0)

    init(endpoint: String, curve: ClientCurve?) throws(BenchFailure) {
        self.endpoint = endpoint
        self.curve = curve
        do {
            stopSignal = try WakeupSignal()
        } catch {
            throw BenchFailure("cannot create a wake-up signal: \(error)")
        }
    }

    /// With `warmUp`, lets the consumers start their long polls once ``connected`` is open.
    func beginPolling() { polling.signal() }

    /// Stops the swarm: ``run(_:maxWaitMilliseconds:maxBytes:warmUp:handler:)`` returns its handler.
    func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        stopSignal.signal()
        polling.signal()
    }

    /// Connects one DEALER per consumer and fetches until ``stop()``, on a thread of its own;
    /// returns the handler. With `warmUp`, each consumer first sends a fetch that does not wait,
    /// the swarm opens ``connected`` once all are answered, and waits for ``beginPolling()``
    /// before the fetches that wait up to `maxWaitMilliseconds`.
    func run<Handler: SwarmHandler>(_ consumers: [SwarmConsumer], maxWaitMilliseconds: UInt32, maxBytes: UInt32, warmUp: Bool,
                                    handler: Handler) async throws(BenchFailure) -> Handler {
        let result = await onThread(named: "spool-bench-swarm") { [self] in
            Result { () throws(BenchFailure) in
                try drive(consumers, maxWaitMilliseconds: maxWaitMilliseconds, maxBytes: maxBytes, warmUp: warmUp, handler: handler)
            }
        }
        if case .failure(let failure) = result {
            connected.open(.failure(failure))
            handler.abandon(failure)
        }
        return try result.get()
    }

    private func drive<Handler: SwarmHandler>(_ initial: [SwarmConsumer], maxWaitMilliseconds: UInt32, maxBytes: UInt32, warmUp: Bool,
                                              handler initialHandler: Handler) throws(BenchFailure) -> Handler {
        var handler = initialHandler
        var consumers = initial
        var contexts: [Context] = []
        var sockets: [Socket] = []
        var poller = Poller()
        let stopItem = poller.add(fileDescriptor: stopSignal.fileDescriptor)
        do throws(ZeroMQError) {
            for index in consumers.indices {
                if index % Self.consumersPerContext == 0 { contexts.append(try Context(ioThreads: 1)) }
                let socket = try Socket(context: contexts[contexts.count - 1], type: .dealer)
                try socket.setLinger(milliseconds: 0)
                if let curve { try socket.setCurveClient(serverKey: curve.serverPublicKey, keys: curve.keys) }
                try socket.connect(endpoint)
                sockets.append(socket)
                _ = poller.add(socket)  // item index + 1: the stop signal is item 0
            }
        } catch {
            throw BenchFailure("cannot connect consumer \(sockets.count + 1) of \(consumers.count) to \(endpoint): \(error)")
        }
        var correlationID: UInt64 = 0
        func fetch(_ index: Int, wait: UInt32) throws(BenchFailure) {
            correlationID += 1
            let request = FetchRequest(topic: consumers[index].topic, partition: consumers[index].partition, offset: consumers[index].offset,
                                       maxWaitMilliseconds: wait, minBytes: 1, maxBytes: maxBytes)
            let sent: Bool
            do throws(ZeroMQError) {
                sent = try sockets[index].send([FrameHeader(opCode: .fetch, correlationID: correlationID).encoded(), request.encoded()], dontWait: true)
            } catch {
                throw BenchFailure("consumer \(index): send failed: \(error)")
            }
            guard sent else { throw BenchFailure("consumer \(index): its send queue is full") }
        }
        /// Waits for replies and hands each to `body` with its consumer and time; false once stopped.
        func receive(_ body: (Int, [Frame], UInt64) throws(BenchFailure) -> Void) throws(BenchFailure) -> Bool {
            let ready: Int
            do throws(ZeroMQError) {
                ready = try poller.poll(timeoutMilliseconds: Self.silenceLimitMilliseconds)
            } catch {
                throw BenchFailure("poll failed: \(error)")
            }
            if poller.isReadable(stopItem) || stopping.load(ordering: .sequentiallyConsistent) { return false }
            guard ready > 0 else { throw BenchFailure("no fetch reply from \(endpoint) for \(Self.silenceLimitMilliseconds / 1000) s") }
            for index in sockets.indices where poller.isReadable(index + 1) {
                while true {
                    let frames: [Frame]?
                    do throws(ZeroMQError) {
                        frames = try sockets[index].receive(dontWait: true)
                    } catch {
                        throw BenchFailure("consumer \(index): receive failed: \(error)")
                    }
                    guard let frames else { break }
                    replies.add(1, ordering: .relaxed)
                    try body(index, frames, monotonicNanoseconds())
                }
            }
            return true
        }

        if warmUp {
            for index in consumers.indices { try fetch(index, wait: 0) }
            var answered = 0
            while answered < consumers.count {
                guard try receive({ index, frames, _ throws(BenchFailure) in
                    _ = try Self.decodeReply(frames, consumer: index)
                    answered += 1
                }) else { return handler }
            }
            connected.open()
            polling.wait()
            if stopping.load(ordering: .sequentiallyConsistent) { return handler }
        }
        for index in consumers.indices { try fetch(index, wait: maxWaitMilliseconds) }
        while try receive({ index, frames, time throws(BenchFailure) in
            let (response, records) = try Self.decodeReply(frames, consumer: index)
            let requested = consumers[index].offset
            let next = records.withUnsafeBytes { bytes in
                Result { () throws(BenchFailure) in
                    try handler.received(consumer: index, requested: requested, batches: bytes,
                                         next: try Self.offsetAfterBatches(bytes, from: requested), logEnd: response.logEndOffset, at: time)
                }
            }
            consumers[index].offset = try next.get()
            try fetch(index, wait: maxWaitMilliseconds)
        }) {}
        return handler
    }

    /// The body and the records frame of a fetch reply; the broker's error as a failure.
    private static func decodeReply(_ frames: [Frame], consumer: Int) throws(BenchFailure) -> (FetchResponse, Frame) {
        guard let first = frames.first else { throw BenchFailure("consumer \(consumer): an empty reply") }
        let header: FrameHeader
        do {
            header = try first.withUnsafeBytes { try FrameHeader.decode($0) }
        } catch {
            throw BenchFailure("consumer \(consumer): a reply with a bad header: \(error)")
        }
        if header.errorCode != .none {
            let message = frames.count > 1 ? (try? frames[1].withUnsafeBytes { try ErrorResponse.decode($0) })?.message : nil
            throw BenchFailure("consumer \(consumer): the broker answered a fetch with \(header.errorCode): \(message ?? "no message")")
        }
        guard frames.count == 3 else { throw BenchFailure("consumer \(consumer): a fetch reply of \(frames.count) frames, expected 3") }
        do {
            return (try frames[1].withUnsafeBytes { try FetchResponse.decode($0) }, frames[2])
        } catch {
            throw BenchFailure("consumer \(consumer): a malformed fetch reply: \(error)")
        }
    }

    /// The offset after the last whole batch of `bytes` (`from` when there is none).
    private static func offsetAfterBatches(_ bytes: UnsafeRawBufferPointer, from: Int64) throws(BenchFailure) -> Int64 {
        var next = from
        try forEachBatch(in: bytes) { header, _ in next = header.nextOffset }
        return next
    }
}

/// Calls `body` with the header and the bytes of every whole record batch in a fetch reply's
/// records frame, in order; a trailing partial batch is left out.
func forEachBatch(in bytes: UnsafeRawBufferPointer,
                  _ body: (RecordBatch.Header, UnsafeRawBufferPointer) throws(BenchFailure) -> Void) throws(BenchFailure) {
    var position = 0
    while bytes.count - position >= RecordBatch.lengthPrefixSize {
        let header: RecordBatch.Header
        do {
            header = try RecordBatch.readHeader(UnsafeRawBufferPointer(rebasing: bytes[position...]))
        } catch {
            throw BenchFailure("a fetch reply holds a bad batch header at byte \(position): \(error)")
        }
        guard header.totalSize <= bytes.count - position else { return }
        try body(header, UnsafeRawBufferPointer(rebasing: bytes[position..<position + header.totalSize]))
        position += header.totalSize
    }
}

/// Raises this process's soft limit on open files to the hard one; returns the limit now in force.
func raiseOpenFileLimit() -> Int {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
    if limit.rlim_cur < limit.rlim_max {
        var raised = limit
        raised.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
    }
    return Int(clamping: limit.rlim_cur)  // RLIM_INFINITY (all ones) clamps to Int.max
}
