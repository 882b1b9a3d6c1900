import Foundation
import Glibc
import Histogram
import Synchronization

/// The monotonic clock in nanoseconds (`CLOCK_MONOTONIC`): the send time a latency record
/// carries, comparable only within this process.
func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// CPU time this process has used so far, all threads, user and system, in seconds.
func processCPUSeconds() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// Elapsed time on the monotonic clock since the stopwatch was made.
struct Stopwatch: Sendable {
    private let start = ContinuousClock.now

    /// Seconds since the stopwatch was made.
    var seconds: Double { (ContinuousClock.now - start).seconds }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}

/// The load averages over 1, 5 and 15 minutes from `/proc/loadavg`, or `unknown`: a busy
/// machine makes every figure smaller.
func loadAverage() -> String {
    guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "unknown" }
    return text.split(separator: " ").prefix(3).joined(separator: " ")
}

/// Progress lines on stderr, each prefixed with the time since the benchmark started, so stdout
/// carries only the results.
struct BenchProgress: Sendable {
    private let clock = Stopwatch()

    /// Seconds since the benchmark started.
    var elapsedSeconds: Double { clock.seconds }

    /// Writes one line.
    func say(_ message: String) {
        FileHandle.standardError.write(Data("[\(String(format: "%6.1f", clock.seconds)) s] \(message)\n".utf8))
    }
}

/// `count` random bytes (incompressible, like most real payloads after compression), from a
/// SplitMix64 generator with a random seed: fast, and no system call per byte.
func randomBytes(_ count: Int) -> [UInt8] {
    var state = UInt64.random(in: .min ... .max)
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { buffer in
        var position = 0
        while position < buffer.count {
            state &+= 0x9E37_79B9_7F4A_7C15
            var mixed = state
            mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
            mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
            mixed ^= mixed >> 31
            withUnsafeBytes(of: mixed) { word in
                for byte in word where position < buffer.count {
                    buffer[position] = byte
                    position += 1
                }
            }
        }
    }
    return bytes
}

/// A fresh topic name, `bench-<8 hex digits><suffix>`: every run writes its own topic, so runs
/// never read each other's records.
func freshBenchTopic(suffix: String = "") -> String {
    "bench-" + String(UInt32.random(in: .min ... .max), radix: 16).leftPadded(to: 8) + suffix
}

/// Latency percentiles of one run, in microseconds.
struct LatencyFigures: Sendable {
    var p50: Double
    var p90: Double
    var p99: Double
    var p999: Double
    var max: Double

    /// Reads the percentiles of a histogram of nanoseconds.
    init(nanoseconds histogram: Histogram<UInt64>) {
        func micros(_ percentile: Double) -> Double { Double(histogram.valueAtPercentile(percentile)) / 1000 }
        p50 = micros(50)
        p90 = micros(90)
        p99 = micros(99)
        p999 = micros(99.9)
        max = Double(histogram.max) / 1000
    }

    init(p50: Double, p90: Double, p99: Double, p999: Double, max: Double) {
        self.p50 = p50
        self.p90 = p90
        self.p99 = p99
        self.p999 = p999
        self.max = max
    }
}

/// The median of `values` (the upper of the two middle ones for an even count); 0 when empty.
func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    return values.sorted()[values.count / 2]
}

/// A one-shot signal many tasks can wait for: ``open(_:)`` releases every waiter, now and later,
/// with a success or a failure (the first one given wins).
final class Gate: Sendable {
    private let state = Mutex<(outcome: Result<Void, BenchFailure>?, waiters: [CheckedContinuation<Result<Void, BenchFailure>, Never>])>((nil, []))

    /// Opens the gate; later calls do nothing.
    func open(_ outcome: Result<Void, BenchFailure> = .success(())) {
        let waiters = state.withLock { state in
            guard state.outcome == nil else { return [CheckedContinuation<Result<Void, BenchFailure>, Never>]() }
            state.outcome = outcome
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: outcome) }
    }

    /// Waits until the gate is open; throws the failure it was opened with.
    func wait() async throws(BenchFailure) {
        let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Void, BenchFailure>, Never>) in
            let ready = state.withLock { state -> Result<Void, BenchFailure>? in
                if let outcome = state.outcome { return outcome }
                state.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
        try outcome.get()
    }
}

/// A failure of the benchmark itself (a section that cannot go on), printed as one line.
struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` on a thread of its own (for blocking work such as a ZeroMQ socket loop, which must
/// not hold one of the few threads of the cooperative pool) and returns its result.
func onThread<Result: Sendable>(named name: String, _ body: @escaping @Sendable () -> Result) async -> Result {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.name = name
        thread.start()
    }
}
