import BenchmarkSupport
import Foundation
import Logging
import SpoolStorage
import SpoolWire

/// Section 6: the log cleaner. A compacted partition written the way snapshots are (one record
/// per batch, 100-byte values, keys drawn at random), in segments of 16 MiB; then one cleaning
/// pass over every segment but the active one, installed: its time (both reads, the synced
/// copies, the renames), the bytes before and after.
struct CompactionBench {
    /// The partition directory, made afresh for each run.
    let directory: String
    /// Records to write.
    let records: Int
    /// Distinct keys.
    let keys: Int
    /// Record value bytes.
    let valueBytes = 100
    let logger: Logger

    private var configuration: LogConfiguration {
        LogConfiguration(segmentBytes: 16 << 20, fsync: .never, cleanupPolicy: .compact)
    }

    /// One pass: what it read (bytes of the segments) and removed.
    struct Pass: TimedRun {
        var throughput: Throughput
        var report: CleaningReport
    }

    /// Writes the partition (not timed), then times one pass and its install.
    func timePass(seed: UInt64) throws -> Pass {
        try? FileManager.default.removeItem(atPath: directory)
        var rng = SplitMix64(state: seed)
        let log = try PartitionLog(directory: directory, configuration: configuration, logger: logger)
        defer {
            _ = log.takeSyncWork()
            try? log.closeCleanly()
        }
        let value = [UInt8](repeating: UInt8(ascii: "s"), count: valueBytes)
        for _ in 0..<records {
            var builder = RecordBatchBuilder()
            builder.append(timestamp: 1_700_000_000_000, key: KeyIndexBench.key(Int.random(in: 0..<keys, using: &rng)), value: value)
            _ = try builder.finish().withUnsafeBytes { try log.append($0) }
        }
        let stopwatch = Stopwatch()
        guard let pass = try log.cleaningPass(keepingNewestSegments: 1, nowMilliseconds: 1_700_000_000_000) else {
            throw BenchError("\(records) records filled no sealed segment: nothing to clean")
        }
        let cleaned = try pass.run()
        _ = try log.install(cleaned)
        return Pass(throughput: Throughput(bytes: pass.bytes, records: cleaned.report.recordsRemoved, seconds: stopwatch.seconds),
                    report: cleaned.report)
    }
}
