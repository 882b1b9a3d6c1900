import BenchmarkSupport
import CZeroMQ
import Foundation
import Histogram
import Synchronization
import ZeroMQ

/// The rtt section: the transport's round trip, with no broker, the floor under every latency
/// figure of a request and its reply. A ROUTER on `tcp://127.0.0.1:*` echoes every message back;
/// a DEALER on another thread (each socket with a context of its own, as a client and a broker in
/// two processes would have) sends one message of `size` bytes, waits for its echo, and records
/// the time in an HdrHistogram, `count` times in a row.
struct RoundTripBench: Sendable {
    /// Round trips per run.
    let count: Int
    /// Bytes per message.
    let size: Int

    /// One run: a fresh pair of contexts and sockets.
    func run() async throws(BenchFailure) -> LatencyRun {
        let count = count, size = size
        let (_, run) = try await RawBench.runPair(
            section: "rtt",
            router: { context, rendezvous in Self.echo(context: context, rendezvous: rendezvous).map { .failure($0) } ?? .success(()) },
            dealer: { context, rendezvous in Self.measure(count: count, size: size, context: context, rendezvous: rendezvous) })
        return run
    }

    /// The ROUTER side: echoes every message to its sender until an empty one says stop.
    private static func echo(context: Context, rendezvous: RawRendezvous) -> BenchFailure? {
        do throws(ZeroMQError) {
            let router = try Socket(context: context, type: .router)
            try router.bind("tcp://127.0.0.1:*")
            rendezvous.bound(try router.lastEndpoint)
            var poller = Poller()
            let item = poller.add(router)
            while true {
                _ = try poller.poll(timeoutMilliseconds: RawBench.silenceLimitMilliseconds)
                guard poller.isReadable(item) else { return BenchFailure("rtt: the ROUTER received nothing for \(RawBench.silenceLimitMilliseconds / 1000) s") }
                while let frames = try router.receive(dontWait: true) {
                    guard frames.count == 2 else { return BenchFailure("rtt: the ROUTER received a message of \(frames.count) frames") }
                    if frames[1].count == 0 { return nil }
                    _ = try router.send(frames)
                }
            }
        } catch {
            return BenchFailure("rtt: \(error)")
        }
    }

    /// The DEALER side: one round trip to open the connection, then `count` measured ones, then stop.
    private static func measure(count: Int, size: Int, context: Context, rendezvous: RawRendezvous) -> Result<LatencyRun, BenchFailure> {
        guard let endpoint = rendezvous.waitForEndpoint() else { return .failure(BenchFailure("rtt: the ROUTER could not bind")) }
        do throws(ZeroMQError) {
            let dealer = try Socket(context: context, type: .dealer)
            try dealer.connect(endpoint)
            let message = [Frame(randomBytes(size))]
            var histogram = nanosecondHistogram()
            _ = try dealer.send(message)
            _ = try dealer.receive()
            let start = monotonicNanoseconds()
            for _ in 0..<count {
                let sent = monotonicNanoseconds()
                _ = try dealer.send(message)
                guard try dealer.receive()?.first?.count == size else { return .failure(BenchFailure("rtt: the echo did not match the message")) }
                histogram.record(monotonicNanoseconds() - sent)
            }
            let seconds = Double(monotonicNanoseconds() - start) / 1e9
            _ = try dealer.send([Frame([UInt8]())])
            rendezvous.waitUntilFinished()
            return .success(LatencyRun(latency: LatencyFigures(nanoseconds: histogram),
                                       sending: Throughput(bytes: count * size, records: count, seconds: seconds), senderLateP99: 0))
        } catch {
            return .failure(BenchFailure("rtt: \(error)"))
        }
    }
}

/// The disk section: what one durable append costs the disk itself, the floor under `fsync:
/// always`. In a scratch file under `directory` (put it on the broker's data directory's
/// filesystem), `count` times: append `size` bytes with `pwrite` at the end, then `fdatasync`;
/// each pair's time goes to an HdrHistogram. The file is removed afterwards.
struct DiskBench: Sendable {
    let directory: String
    let count: Int
    let size: Int

    func run() throws(BenchFailure) -> LatencyRun {
        let path = "\(directory)/.spool-bench-disk-\(UInt32.random(in: .min ... .max))"
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw BenchFailure("disk: cannot create \(path): \(String(cString: strerror(errno)))") }
        defer {
            close(descriptor)
            unlink(path)
        }
        let bytes = randomBytes(size)
        var histogram = nanosecondHistogram()
        let start = monotonicNanoseconds()
        for index in 0..<count {
            let before = monotonicNanoseconds()
            let written = bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, size, off_t(index * size)) }
            guard written == size else { throw BenchFailure("disk: write to \(path) failed: \(String(cString: strerror(errno)))") }
            guard fdatasync(descriptor) == 0 else { throw BenchFailure("disk: fdatasync of \(path) failed: \(String(cString: strerror(errno)))") }
            histogram.record(monotonicNanoseconds() - before)
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        return LatencyRun(latency: LatencyFigures(nanoseconds: histogram), sending: Throughput(bytes: count * size, records: count, seconds: seconds),
                          senderLateP99: 0)
    }
}

/// The wakeup section: what handing work to a sleeping thread costs, the unit of everything a
/// request pays beyond the transport and the disk (the broker's loop and flusher, the client's
/// I/O thread and the waiting task each sleep until woken). A thread blocks in `read` on an
/// eventfd; every millisecond (longer than a virtual CPU's idle polling, so it really sleeps)
/// this one notes the time and writes to it, and the woken thread records now minus that time
/// in an HdrHistogram: one hand-off, `count` times.
struct WakeupBench: Sendable {
    let count: Int

    func run() throws(BenchFailure) -> LatencyRun {
        let descriptor = eventfd(0, Int32(EFD_CLOEXEC))
        guard descriptor >= 0 else { throw BenchFailure("wakeup: cannot create an eventfd: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let count = count
        let result = Mutex<Histogram<UInt64>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let sentAt = Atomic<UInt64>(0)
        let sleeper = Thread {
            // The eventfd counts the writes; a read returns (and resets) their sum, so writes that
            // pile up while the sleeper is late are counted, not lost, and it never waits for one
            // that already came.
            var histogram = nanosecondHistogram()
            var woken = 0
            var writes: UInt64 = 0
            while woken < count, read(descriptor, &writes, 8) == 8 {
                histogram.record(monotonicNanoseconds() - sentAt.load(ordering: .acquiring))
                woken += Int(writes)
            }
            result.withLock { $0 = histogram }
            done.signal()
        }
        sleeper.start()
        let start = monotonicNanoseconds()
        for _ in 0..<count {
            usleep(1000)
            sentAt.store(monotonicNanoseconds(), ordering: .releasing)
            var one: UInt64 = 1
            guard write(descriptor, &one, 8) == 8 else { throw BenchFailure("wakeup: write to an eventfd failed: \(String(cString: strerror(errno)))") }
        }
        done.wait()
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        return LatencyRun(latency: LatencyFigures(nanoseconds: result.withLock { $0! }),
                          sending: Throughput(bytes: 0, records: count, seconds: seconds), senderLateP99: 0)
    }
}
