import BenchmarkSupport
import Glibc
import Logging
import SpoolStorage

/// Section 4: how long a partition log of `totalBytes` in one active segment takes to open.
/// After a crash, opening scans every segment batch by batch (headers, CRC-32C, records, dense
/// offsets); after a clean shutdown it only runs cheap checks.
struct RecoveryBench {
    /// One timed open: how the previous run ended, and where the page cache is.
    struct Case: Hashable, Sendable, CustomStringConvertible {
        var mode: PartitionLog.OpenMode
        var cache: CacheState

        var description: String {
            "\(mode == .afterCrash ? "after a crash: full scan + CRC" : "after a clean shutdown: cheap checks"), \(cache) cache"
        }
    }

    /// Where the page cache is when an open starts.
    enum CacheState: String, Sendable {
        /// Dropped first (`/proc/sys/vm/drop_caches`), so the open reads from the disk.
        case cold
        /// Still holding the whole log from the previous open.
        case warm
    }

    /// Segment size for the test log: above `totalBytes`, so everything stays in one active segment.
    private static let segmentBytes = 2 << 30

    /// The partition directory of the test log.
    let directory: String
    /// Bytes of batches to write.
    let totalBytes: Int
    /// The records written: 1 KiB values in batches.
    let shape: RecordShape
    /// Logger of the log (warnings only).
    let logger: Logger
    /// Where progress goes.
    let progress: BenchmarkProgress

    private var configuration: LogConfiguration { LogConfiguration(segmentBytes: Self.segmentBytes, fsync: .never) }

    /// Writes the test log with `PartitionLog.append`, one encoded batch appended over and over,
    /// closes it and syncs the filesystem (so the page cache can be dropped).
    func buildLog() throws {
        let log = try PartitionLog(directory: directory, configuration: configuration, logger: logger)
        let batch = shape.encodedBatch(timestamp: 0)
        let reportEvery = 256 << 20
        try batch.withUnsafeBytes { bytes in
            while log.sizeInBytes < totalBytes {
                _ = try log.append(bytes)
                if log.sizeInBytes % reportEvery < bytes.count {
                    progress.say("  recovery: built \(log.sizeInBytes >> 20) of \(totalBytes >> 20) MiB")
                }
            }
        }
        try log.closeCleanly()
        sync()
    }

    /// Times opening the log in `mode` (nothing else is timed), then closes it cleanly. Throws if
    /// the open had anything to repair: the log was closed cleanly, so a repair means a bug.
    func timeOpen(mode: PartitionLog.OpenMode) throws -> Throughput {
        let stopwatch = Stopwatch()
        let log = try PartitionLog(directory: directory, configuration: configuration, mode: mode, logger: logger)
        let seconds = stopwatch.seconds
        defer { try? log.closeCleanly() }
        guard log.recoveryReports.isEmpty else {
            throw BenchError("opening the cleanly closed test log repaired it: \(log.recoveryReports)")
        }
        return Throughput(bytes: log.sizeInBytes, records: Int(log.logEndOffset), seconds: seconds)
    }

    /// Writes dirty pages back and drops the page cache; returns why it could not, or nil.
    func dropPageCache() -> String? {
        sync()
        do {
            let control = try PosixFile(path: "/proc/sys/vm/drop_caches", flags: O_WRONLY)
            try Array("3\n".utf8).withUnsafeBytes { try control.write($0, at: 0) }
            return nil
        } catch {
            return "\(error)"
        }
    }
}
