import BenchmarkSupport
import Logging
import Spool
import SpoolStorage

/// Section 3: reading back, from the page cache, the partition an append run just wrote: through
/// the broker with a client fetching, and at the storage level with ``PartitionLog`` and
/// ``LogSlice``. Both count record values, like the append section.
struct ReadBench {
    /// Bytes asked for per read: the SDK's default fetch size (`ClientConfiguration.fetchMaxBytes`).
    static let readBytes = 1 << 20

    /// The partition to read.
    let log: AppendedLog
    /// The records it holds.
    let shape: RecordShape

    /// Fetches the whole partition with one client, one fetch after another, from offset 0 to the
    /// end. The broker must be running.
    func readThroughBroker() async throws -> Throughput {
        let client = try await log.broker.makeClient(configuration: ClientConfiguration(fetchMaxBytes: Self.readBytes))
        defer { client.close() }
        let end = Int64(log.recordCount)
        var offset: Int64 = 0
        var bytes = 0
        let stopwatch = Stopwatch()
        while offset < end {
            let records = try await client.fetch(from: log.topic, partition: 0, offset: offset).records
            guard let last = records.last else { throw BenchError("a fetch at offset \(offset) returned nothing; the partition ends at \(end)") }
            bytes += records.reduce(0) { $0 + $1.value.count }
            offset = last.offset + 1
        }
        return Throughput(bytes: bytes, records: Int(end), seconds: stopwatch.seconds)
    }

    /// Opens the partition's log directly (untimed; the open scans the active segment), then
    /// times `read(from:maxBytes:endOffset:)` and `LogSlice.read(into:)` over the whole log. The
    /// broker must be stopped.
    func readFromStorage(logger: Logger) throws -> Throughput {
        let partition = try PartitionLog(directory: log.partitionDirectory, configuration: LogConfiguration(), logger: logger)
        defer { partition.close() }
        var buffer = [UInt8](repeating: 0, count: Self.readBytes)
        var offset = partition.logStartOffset
        let stopwatch = Stopwatch()
        while let slice = try partition.read(from: offset, maxBytes: Self.readBytes, endOffset: partition.logEndOffset) {
            if slice.length > buffer.count { buffer = [UInt8](repeating: 0, count: slice.length) }
            _ = try buffer.withUnsafeMutableBytes { try slice.read(into: $0) }
            offset = slice.nextOffset
        }
        let seconds = stopwatch.seconds
        let records = Int(partition.logEndOffset - partition.logStartOffset)
        return Throughput(bytes: records * shape.recordBytes, records: records, seconds: seconds)
    }
}
