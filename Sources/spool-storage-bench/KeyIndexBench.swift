import BenchmarkSupport
import Foundation
import Logging
import SpoolStorage
import SpoolWire

/// Section 5: the key index. A partition is written the way an event store writes (each
/// command's 1–3 events of one key in a batch of their own, keys drawn at random), then:
/// loading one key's history through ``PartitionLog/read(key:from:maxBytes:endOffset:)`` from the
/// page cache (time and bytes read), a conditional append (the key's last offset, then the
/// append) against a plain one, and opening the log after a clean close and after a crash.
struct KeyIndexBench {
    /// The partition directory.
    let directory: String
    /// Records to write.
    let records: Int
    /// Distinct keys.
    let keys: Int
    /// Records per batch: 1...3 for the event-store shape; a larger fixed number for mixed batches.
    let recordsPerBatch: ClosedRange<Int>
    /// Record value bytes.
    let valueBytes = 100
    let logger: Logger
    let progress: BenchmarkProgress

    private var configuration: LogConfiguration { LogConfiguration(fsync: .never) }

    static func key(_ number: Int) -> [UInt8] { Array("order-\(number)".utf8) }

    /// Writes the log (seeded, so every run builds the same one) and closes it cleanly.
    func buildLog() throws -> Throughput {
        var rng = SplitMix64(state: 42)
        let log = try PartitionLog(directory: directory, configuration: configuration, logger: logger)
        let value = [UInt8](repeating: UInt8(ascii: "e"), count: valueBytes)
        let stopwatch = Stopwatch()
        var written = 0
        var nextReport = records / 10
        while written < records {
            var builder = RecordBatchBuilder()
            let count = min(Int.random(in: recordsPerBatch, using: &rng), records - written)
            let single = recordsPerBatch.upperBound <= 3 ? Self.key(Int.random(in: 0..<keys, using: &rng)) : nil
            for _ in 0..<count {
                builder.append(timestamp: 1_700_000_000_000, key: single ?? Self.key(Int.random(in: 0..<keys, using: &rng)), value: value)
            }
            let batch = builder.finish()
            _ = try batch.withUnsafeBytes { try log.append($0) }
            written += count
            if written >= nextReport {
                progress.say("  keys: built \(written) of \(records) records")
                nextReport += records / 10
            }
        }
        let seconds = stopwatch.seconds
        _ = log.takeSyncWork()
        try log.closeCleanly()
        return Throughput(bytes: written * valueBytes, records: written, seconds: seconds)
    }

    /// One history load: its time, the bytes the process read meanwhile (index and batches, from
    /// `/proc/self/io`), and the key's records found.
    struct Load: TimedRun {
        var throughput: Throughput
        var bytesRead: Int
    }

    /// Loads `samples` random keys' histories one after another (each in full, as an event store
    /// loads an aggregate: pages of 1 MiB, records decoded and filtered by key); returns the median load.
    func timeHistoryLoads(samples: Int, seed: UInt64) throws -> Load {
        let log = try PartitionLog(directory: directory, configuration: configuration, mode: .afterCleanShutdown, logger: logger)
        defer { try? log.closeCleanly() }
        var rng = SplitMix64(state: seed)
        var loads: [Load] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        for _ in 0..<samples {
            let key = Self.key(Int.random(in: 0..<keys, using: &rng))
            let before = Self.bytesReadByProcess()
            let stopwatch = Stopwatch()
            var offset: Int64 = 0
            var found = 0
            while true {
                let slices = try log.read(key: key, from: offset, maxBytes: 1 << 20, endOffset: log.logEndOffset)
                guard !slices.slices.isEmpty else { break }
                let length = slices.slices.reduce(0) { $0 + $1.length }
                if length > buffer.count { buffer = [UInt8](repeating: 0, count: length) }
                _ = try buffer.withUnsafeMutableBytes { try LogSlice.read(slices.slices, into: $0) }
                var position = 0
                while position < length {
                    let batch = try buffer[position..<length].withUnsafeBytes { bytes in
                        let size = try RecordBatch.readHeader(bytes).totalSize
                        return (size, try RecordBatch.records(in: UnsafeRawBufferPointer(rebasing: bytes[..<size])))
                    }
                    found += batch.1.count { $0.key == key && $0.offset >= offset }
                    position += batch.0
                }
                offset = slices.nextOffset
                guard let last = slices.lastOffset, offset <= last else { break }
            }
            let seconds = stopwatch.seconds
            loads.append(Load(throughput: Throughput(bytes: found * valueBytes, records: found, seconds: seconds),
                              bytesRead: Self.bytesReadByProcess() - before))
        }
        // The median by time (Measurement takes the median by bandwidth, which varies with the record count).
        return loads.sorted { $0.throughput.seconds < $1.throughput.seconds }[loads.count / 2]
    }

    /// Appends `count` one-record batches to random existing keys; `conditional` first asks the
    /// key's last offset, as the broker does for a conditional append.
    func timeAppends(count: Int, conditional: Bool, seed: UInt64) throws -> Throughput {
        let log = try PartitionLog(directory: directory, configuration: configuration, mode: .afterCleanShutdown, logger: logger)
        defer {
            _ = log.takeSyncWork()
            try? log.closeCleanly()
        }
        var rng = SplitMix64(state: seed)
        let value = [UInt8](repeating: UInt8(ascii: "a"), count: valueBytes)
        let batches = (0..<count).map { _ in
            var builder = RecordBatchBuilder()
            let key = Self.key(Int.random(in: 0..<keys, using: &rng))
            builder.append(timestamp: 1_700_000_000_000, key: key, value: value)
            return (key, builder.finish())
        }
        let stopwatch = Stopwatch()
        var checked = 0
        for (key, batch) in batches {
            if conditional, try log.lastOffset(ofKey: key) != nil { checked += 1 }
            _ = try batch.withUnsafeBytes { try log.append($0) }
        }
        let seconds = stopwatch.seconds
        guard !conditional || checked == count else { throw BenchError("\(count - checked) of \(count) existing keys had no last offset") }
        return Throughput(bytes: count * valueBytes, records: count, seconds: seconds)
    }

    /// Opens the log: after a clean close (reads and checks the key-index files) or after a
    /// crash (removes them and rebuilds the index from the whole log, after the segment scan).
    func timeOpen(mode: PartitionLog.OpenMode) throws -> (Throughput, KeyIndexStatistics) {
        let stopwatch = Stopwatch()
        let log = try PartitionLog(directory: directory, configuration: configuration, mode: mode, logger: logger)
        let seconds = stopwatch.seconds
        let statistics = log.keyIndexStatistics
        _ = log.takeSyncWork()
        try log.closeCleanly()
        return (Throughput(bytes: log.sizeInBytes, records: Int(log.logEndOffset), seconds: seconds), statistics)
    }

    /// Bytes this process read through system calls so far (`rchar`, page cache included).
    static func bytesReadByProcess() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("rchar:") }) else { return 0 }
        return Int(line.dropFirst("rchar:".count).trimmingCharacters(in: .whitespaces)) ?? 0
    }
}

/// SplitMix64: a small, fast seeded generator for benchmark data (the same seed, the same data).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }
}
