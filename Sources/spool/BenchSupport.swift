import ArgumentParser
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

/// Writes `time` (8 bytes, little-endian) over the start of `value`, which must hold at least 8
/// bytes: how a latency record carries its send time.
func stamp(_ value: inout [UInt8], with time: UInt64) {
    withUnsafeBytes(of: time.littleEndian) { stamp in
        value.withUnsafeMutableBytes { $0.copyMemory(from: stamp) }
    }
}

/// An empty HdrHistogram of nanoseconds, 1 ns to 1 hour at three significant digits: every
/// latency the bench records goes into one of these.
func nanosecondHistogram() -> Histogram<UInt64> {
    Histogram(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: .three)
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

/// Runs a bench; a ``BenchFailure`` or a `SpoolError` becomes `spool: error: <message>` on
/// stderr and exit code 1.
func reportingBenchFailures(_ body: () async throws -> Void) async throws {
    do {
        try await reportingErrors(body)
    } catch let failure as BenchFailure {
        writeErrorLine(failure.description)
        throw ExitCode.failure
    }
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
