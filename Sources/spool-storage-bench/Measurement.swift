import Glibc

/// Work done in one timed run.
struct Throughput: Sendable {
    /// Bytes moved: record values for append and read, file bytes for disk and recovery.
    var bytes: Int
    /// Records moved; 0 where records mean nothing (the disk section).
    var records: Int
    /// Seconds the timed part took.
    var seconds: Double

    /// Bandwidth in MB/s (10^6 bytes per second).
    var megabytesPerSecond: Double { Double(bytes) / seconds / 1e6 }
    /// Records per second.
    var recordsPerSecond: Double { Double(records) / seconds }
}

/// The outcome of one run of a case: its throughput and whatever else the section reports.
protocol TimedRun: Sendable {
    /// What the run moved and how long it took.
    var throughput: Throughput { get }
}

extension Throughput: TimedRun {
    var throughput: Throughput { self }
}

/// The runs of one case.
struct Measurement<Run: TimedRun>: Sendable {
    /// Every run, in the order they ran; never empty.
    let runs: [Run]

    /// The run with the median bandwidth (the upper of the two middle ones for an even count);
    /// among runs of equal bandwidth, as when they move no bytes, the shorter ranks higher.
    var median: Run {
        runs.sorted { ($0.throughput.megabytesPerSecond, -$0.throughput.seconds) < ($1.throughput.megabytesPerSecond, -$1.throughput.seconds) }[runs.count / 2]
    }
}

/// Runs `body` for every case `count` times, round-robin (each case once, then each again, and so
/// on), so that a machine whose speed drifts slows every case alike. `body` gets the case and the
/// run number (from 1). Returns one measurement per case, in the order of `cases`.
func measure<Case, Run: TimedRun>(_ cases: [Case], runs count: Int,
                                  _ body: (Case, Int) async throws -> Run) async rethrows -> [Measurement<Run>] {
    var runs = Array(repeating: [Run](), count: cases.count)
    for number in 1...count {
        for (index, item) in cases.enumerated() {
            runs[index].append(try await body(item, number))
        }
    }
    return runs.map(Measurement.init)
}

/// ``measure(_:runs:_:)`` for a single case.
func measure<Run: TimedRun>(runs count: Int, _ body: (Int) async throws -> Run) async rethrows -> Measurement<Run> {
    try await measure([()], runs: count) { _, number in try await body(number) }[0]
}
