import BenchmarkSupport
import Dispatch
import Foundation
import Synchronization
import ZeroMQ

/// The raw section: the transport's own limit, with no broker. A ROUTER bound on
/// `tcp://127.0.0.1:*` and a DEALER connected to it, in this process, each with a thread and a
/// ZeroMQ context (one I/O thread) of its own, as a client and a broker in two processes would
/// have. The DEALER sends `count` one-frame messages of `size` bytes as fast as it can (like a
/// produce without the broker: no batching, no acknowledgement); the ROUTER receives them all.
///
/// Both sockets go through the project's `ZeroMQ` wrapper, as the SDK and the broker do, with the
/// SDK's high-water mark (100,000 messages). The sender uses blocking sends of one prepared
/// frame, shared by reference count rather than copied: copying the bytes into each message, or
/// non-blocking sends with a poll at the high-water mark, measured the same within the noise,
/// and one context for both sockets was no faster. The receiving side is the limit (the wrapper
/// allocates a `[Frame]` and a `Frame` per frame received). The clock starts after a first
/// message has crossed (the connection is up) and stops when the last message is received.
struct RawBench: Sendable {
    /// Messages per run.
    let count: Int
    /// Bytes per message.
    let size: Int

    /// The SDK connection's high-water mark, in both directions.
    static let highWaterMark: Int32 = 100_000
    /// How long the receiver waits for the next message before it gives up.
    static let silenceLimitMilliseconds = 10_000

    /// Runs the ROUTER side and the DEALER side of a section with no broker, on a thread each and
    /// with a ZeroMQ context (one I/O thread) each, as two processes would have. A side that fails
    /// shuts the other's context down (and a failing ROUTER releases a DEALER waiting for it), so
    /// neither waits forever. Returns both results, or the first failure.
    static func runPair<RouterResult: Sendable, DealerResult: Sendable>(
        section: String,
        router: @escaping @Sendable (Context, RawRendezvous) -> Result<RouterResult, BenchFailure>,
        dealer: @escaping @Sendable (Context, RawRendezvous) -> Result<DealerResult, BenchFailure>
    ) async throws(BenchFailure) -> (RouterResult, DealerResult) {
        let routerContext: Context
        let dealerContext: Context
        do {
            (routerContext, dealerContext) = (try Context(ioThreads: 1), try Context(ioThreads: 1))
        } catch {
            throw BenchFailure("\(section): cannot create a ZeroMQ context: \(error)")
        }
        let rendezvous = RawRendezvous()
        async let routed = onThread(named: "spool-bench-router") { () -> Result<RouterResult, BenchFailure> in
            let result = router(routerContext, rendezvous)
            if case .failure = result { dealerContext.shutdown(); rendezvous.abandon() }
            rendezvous.finished()
            return result
        }
        async let dealt = onThread(named: "spool-bench-dealer") { () -> Result<DealerResult, BenchFailure> in
            let result = dealer(dealerContext, rendezvous)
            if case .failure = result { routerContext.shutdown() }
            return result
        }
        let (routerResult, dealerResult) = await (routed, dealt)
        return (try routerResult.get(), try dealerResult.get())
    }

    /// One run: a fresh pair of contexts and sockets.
    func run() async throws(BenchFailure) -> Throughput {
        let count = count, size = size
        let (end, start) = try await Self.runPair(
            section: "raw",
            router: { context, rendezvous in Self.receive(count: count, size: size, context: context, rendezvous: rendezvous) },
            dealer: { context, rendezvous in Self.send(count: count, size: size, context: context, rendezvous: rendezvous) })
        return Throughput(bytes: count * size, records: count, seconds: Double(end - start) / 1e9)
    }

    /// The ROUTER side: binds, hands the endpoint over, receives the first message (the
    /// connection is up), then `count` more. Returns the monotonic time of the last one.
    private static func receive(count: Int, size: Int, context: Context, rendezvous: RawRendezvous) -> Result<UInt64, BenchFailure> {
        do throws(ZeroMQError) {
            let router = try Socket(context: context, type: .router)
            try router.setReceiveHighWaterMark(highWaterMark)
            try router.bind("tcp://127.0.0.1:*")
            rendezvous.bound(try router.lastEndpoint)
            var poller = Poller()
            let item = poller.add(router)
            var received = -1  // the first message only opens the connection
            while received < count {
                // Drain without waiting; poll (bounded) only when nothing is ready.
                if let frames = try router.receive(dontWait: true) {
                    guard frames.count == 2, received < 0 || frames[1].count == size else {
                        return .failure(BenchFailure("raw: the ROUTER received a message of \(frames.count) frames, \(frames.last?.count ?? 0) bytes; expected [routing id, \(size) bytes]"))
                    }
                    received += 1
                    if received == 0 { rendezvous.connected() }
                    continue
                }
                _ = try poller.poll(timeoutMilliseconds: silenceLimitMilliseconds)
                guard poller.isReadable(item) else {
                    return .failure(BenchFailure("raw: the ROUTER received nothing for \(silenceLimitMilliseconds / 1000) s after \(max(0, received)) of \(count) messages"))
                }
            }
            return .success(monotonicNanoseconds())
        } catch {
            return .failure(BenchFailure("raw: \(error)"))
        }
    }

    /// The DEALER side: connects, sends a first message and waits until it arrived, then sends
    /// `count` messages with blocking sends. Returns the monotonic time before the first of them.
    private static func send(count: Int, size: Int, context: Context, rendezvous: RawRendezvous) -> Result<UInt64, BenchFailure> {
        guard let endpoint = rendezvous.waitForEndpoint() else { return .failure(BenchFailure("raw: the ROUTER could not bind")) }
        do throws(ZeroMQError) {
            let dealer = try Socket(context: context, type: .dealer)
            try dealer.setSendHighWaterMark(highWaterMark)
            try dealer.connect(endpoint)
            try dealer.send([Frame([UInt8(0)])])
            guard rendezvous.waitUntilConnected() else { return .failure(BenchFailure("raw: the ROUTER gave up before the connection was up")) }
            // One frame, sent `count` times: each send shares its bytes by reference count.
            let message = [Frame(randomBytes(size))]
            let start = monotonicNanoseconds()
            for _ in 0..<count {
                try dealer.send(message)
            }
            // The socket drops what it has not sent yet when it closes (linger 0): keep it open
            // until the ROUTER has everything.
            rendezvous.waitUntilFinished()
            return .success(start)
        } catch {
            return .failure(BenchFailure("raw: \(error)"))
        }
    }
}

/// How the two threads of a raw run (or a round-trip run) meet: the ROUTER's endpoint, then "the connection is up".
/// Blocking waits, for threads outside the cooperative pool.
final class RawRendezvous: Sendable {
    private let endpoint = Mutex<String?>(nil)
    private let endpointReady = DispatchSemaphore(value: 0)
    private let connectionUp = DispatchSemaphore(value: 0)
    private let receiverDone = DispatchSemaphore(value: 0)
    private let abandoned = Atomic<Bool>(false)

    func bound(_ endpoint: String) {
        self.endpoint.withLock { $0 = endpoint }
        endpointReady.signal()
    }

    func connected() { connectionUp.signal() }

    /// The receiver is done, successfully or not.
    func finished() { receiverDone.signal() }

    func waitUntilFinished() { receiverDone.wait() }

    /// The receiver failed: release a sender that waits for it.
    func abandon() {
        abandoned.store(true, ordering: .sequentiallyConsistent)
        endpointReady.signal()
        connectionUp.signal()
    }

    func waitForEndpoint() -> String? {
        endpointReady.wait()
        return endpoint.withLock { $0 }
    }

    func waitUntilConnected() -> Bool {
        connectionUp.wait()
        return !abandoned.load(ordering: .sequentiallyConsistent)
    }
}
