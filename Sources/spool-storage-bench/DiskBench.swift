import BenchmarkSupport
import Glibc

/// Section 1, the physical limit: writes a fresh file sequentially in fixed-size chunks, with an
/// `fdatasync` after every chunk (what the disk itself sustains, the ceiling for `fsync: always`)
/// or without (what the page cache absorbs). The file grows as it is written, like a log segment.
struct DiskBench {
    /// Where the test file goes (the filesystem the logs use).
    let directory: String
    /// Bytes written per run.
    let totalBytes: Int

    /// Writes `totalBytes` in `chunkBytes` chunks to a new file and times the writes (and syncs,
    /// when `syncEachChunk`). Without per-chunk syncs the file is synced after the clock stops,
    /// so its write-back does not disturb the next case. The file is deleted afterwards.
    func run(chunkBytes: Int, syncEachChunk: Bool) throws -> Throughput {
        let path = "\(directory)/disk-\(chunkBytes)-\(syncEachChunk ? "sync" : "nosync").dat"
        defer { unlink(path) }
        let file = try PosixFile(path: path, flags: O_WRONLY | O_CREAT | O_TRUNC)
        // Random bytes, so that nothing below (compression, deduplication) makes writing cheaper.
        let chunk = randomBytes(chunkBytes)
        let chunkCount = max(1, totalBytes / chunkBytes)
        let stopwatch = Stopwatch()
        try chunk.withUnsafeBytes { bytes in
            for number in 0..<chunkCount {
                try file.write(bytes, at: number * chunkBytes)
                if syncEachChunk { try file.syncData() }
            }
        }
        let seconds = stopwatch.seconds
        if !syncEachChunk { try file.syncData() }
        return Throughput(bytes: chunkCount * chunkBytes, records: 0, seconds: seconds)
    }
}
