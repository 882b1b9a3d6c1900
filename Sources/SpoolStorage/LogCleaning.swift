import Glibc
import SpoolWire

/// One pass of the log cleaner over sealed segments of a compacted partition (`cleanup.policy:
/// compact`), prepared by ``PartitionLog/cleaningPass(keepingNewestSegments:nowMilliseconds:)``
/// on the log's thread. ``run(isCancelled:)`` does the work on any thread, without touching the
/// log: it reads the segments, keeps every key's last record among them (and every record
/// without a key), drops tombstones older than `delete.retention.ms`, and writes a cleaned copy
/// of each segment that loses records, next to it, synced. ``PartitionLog/install(_:)`` then
/// swaps the copies in on the log's thread. Offsets never change: a rewritten batch keeps its
/// offset range and holds the records kept (``RecordBatch/compactedAttribute``); consecutive
/// batches left without records become one empty batch covering their offsets.
///
/// A crash at any point leaves either a segment or its cleaned copy: copies not yet swapped in
/// are deleted at the next open, and a swap cut between its renames is repaired by recovery.
public struct LogCleaning: Sendable {
    /// A segment as the pass found it.
    struct Source: Sendable {
        let baseOffset: Int64
        let nextOffset: Int64
        let size: Int
        let log: CachedFile
    }

    let directory: String
    let sources: [Source]
    /// Tombstones with a timestamp below this (ms since the epoch) are removed.
    let tombstoneCutoff: Int64
    let indexIntervalBytes: Int
    let io: FileIO

    /// Segments the pass reads.
    public var segmentCount: Int { sources.count }
    /// The offset after the segments the pass reads.
    public var endOffset: Int64 { sources.last?.nextOffset ?? 0 }
    /// Bytes of the segments the pass reads (all once to find each key's last record, then those
    /// that lose records once more to copy them).
    public var bytes: Int { sources.reduce(0) { $0 + $1.size } }

    /// Runs the pass: returns the cleaned copies written (segments that lose nothing are not
    /// copied) and what was removed. Stops early, deleting its copies, when `isCancelled` says
    /// so (checked between batches), throwing ``StorageError/Code/closed``. On a failure (a full
    /// disk) the copies are deleted and the error thrown; the log is untouched either way.
    public func run(isCancelled: () -> Bool = { false }) throws(StorageError) -> CleanedSegments {
        // Pass 1: each key's last record, and per segment its keyed records, so that pass 2 knows
        // which segments lose nothing without reading them again.
        var lastRecords: [IndexedKey: LastRecord] = [:]
        var keyedRecords = [Int](repeating: 0, count: sources.count)
        for (number, source) in sources.enumerated() {
            try forEachBatch(of: source, isCancelled: isCancelled) { (header, batch) throws(StorageError) in
                try records(of: batch) { record in
                    guard let key = record.key else { return }
                    keyedRecords[number] += 1
                    let isExpiredTombstone = record.hasEmptyValue && header.firstTimestamp &+ record.timestampDelta < tombstoneCutoff
                    lastRecords[IndexedKey(Array(key))] = LastRecord(offset: header.baseOffset + record.offsetDelta, isKept: !isExpiredTombstone)
                }
            }
        }
        var keptRecords = [Int](repeating: 0, count: sources.count)
        for last in lastRecords.values where last.isKept {
            keptRecords[sources.partitioningIndex { $0.nextOffset > last.offset }] += 1
        }
        // Pass 2: a copy of each segment that loses records.
        var cleaned: [CleanedSegments.Copy] = []
        var report = CleaningReport(segmentsRead: sources.count, keys: lastRecords.count)
        do throws(StorageError) {
            for (number, source) in sources.enumerated() {
                report.bytesBefore += source.size
                guard keyedRecords[number] > keptRecords[number] else {
                    report.bytesAfter += source.size
                    continue
                }
                let copy = try clean(source, lastRecords: lastRecords, report: &report, isCancelled: isCancelled)
                cleaned.append(copy)
                report.segmentsCleaned += 1
                report.bytesAfter += copy.size
            }
        } catch {
            for copy in cleaned { copy.remove() }
            throw error
        }
        return CleanedSegments(copies: cleaned, report: report)
    }

    /// Where a key's last record is, and whether the pass keeps it (not a tombstone past the cutoff).
    private struct LastRecord: Equatable {
        let offset: Int64
        let isKept: Bool
    }

    /// Writes the cleaned copy of `source` and its indexes, synced: each key's last record (unless
    /// an expired tombstone) and every record without a key.
    private func clean(_ source: Source, lastRecords: [IndexedKey: LastRecord], report: inout CleaningReport,
                       isCancelled: () -> Bool) throws(StorageError) -> CleanedSegments.Copy {
        var copy = CleanedSegments.Copy(directory: directory, baseOffset: source.baseOffset, originalSize: source.size)
        do throws(StorageError) {
            var writer = try SegmentWriter(baseOffset: source.baseOffset, copy: copy, indexIntervalBytes: indexIntervalBytes, io: io)
            try forEachBatch(of: source, isCancelled: isCancelled) { (header, batch) throws(StorageError) in
                var kept: [UInt8] = []
                var keptCount: UInt32 = 0
                try records(of: batch) { record in
                    // Kept: a record without a key, or its key's last one if that is kept.
                    if let key = record.key,
                       lastRecords[IndexedKey(Array(key))] != LastRecord(offset: header.baseOffset + record.offsetDelta, isKept: true) {
                        report.recordsRemoved += 1
                        if record.hasEmptyValue { report.tombstonesRemoved += 1 }
                    } else {
                        kept += record.bytes
                        keptCount += 1
                    }
                }
                try writer.add(header, records: kept, count: keptCount)
            }
            copy.size = try writer.finish()
        } catch {
            copy.remove()
            throw error
        }
        return copy
    }

    /// Calls `body` with every batch of `source`, checking `isCancelled` before each: when it
    /// says so, throws ``StorageError/Code/closed``.
    private func forEachBatch(of source: Source, isCancelled: () -> Bool,
                              _ body: (RecordBatch.Header, UnsafeRawBufferPointer) throws(StorageError) -> Void) throws(StorageError) {
        let scanner = BatchScanner(file: try source.log.handle(), end: source.size, chunkSize: BatchScanner.recoveryChunkSize)
        var position = 0
        while position < source.size {
            guard !isCancelled() else { throw StorageError(.closed, "the log cleaner was stopped") }
            guard case .batch(let header) = try scanner.batch(at: position, verify: false) else {
                throw StorageError(.corrupt, "\(source.log.path): no whole batch at byte \(position) of \(source.size)")
            }
            try body(header, try scanner.bytes(at: position, count: header.totalSize))
            position += header.totalSize
        }
    }

    private func records(of batch: UnsafeRawBufferPointer, _ body: (RecordBatch.EncodedRecord) -> Void) throws(StorageError) {
        do throws(WireError) {
            try RecordBatch.forEachRecord(in: batch, body)
        } catch {
            throw StorageError(.corrupt, "the log cleaner cannot read a batch: \(error.message)")
        }
    }
}

/// The cleaned copy of a segment as it is written: each batch rewritten as a compacted batch,
/// runs of emptied batches merged into one, streamed to the copy's file through a buffer.
private struct SegmentWriter {
    /// Bytes buffered before a write.
    static let bufferBytes = 1 << 20

    /// The segment's base offset.
    let baseOffset: Int64
    let indexIntervalBytes: Int
    private let log: FileHandle
    private let index: FileHandle
    private let timeIndex: FileHandle
    private var buffer: [UInt8] = []
    /// Bytes written to the file so far.
    private var written = 0
    private var indexes = SegmentIndexes()
    /// Emptied batches not yet written: the first one's base offset, the last one's header, and
    /// their largest timestamp.
    private var pendingEmpty: (baseOffset: Int64, last: RecordBatch.Header, maxTimestamp: Int64)?

    init(baseOffset: Int64, copy: CleanedSegments.Copy, indexIntervalBytes: Int, io: FileIO) throws(StorageError) {
        self.baseOffset = baseOffset
        self.indexIntervalBytes = indexIntervalBytes
        let flags = O_RDWR | O_CREAT | O_TRUNC
        log = try FileHandle(opening: copy.logPath, flags: flags, io: io)
        index = try FileHandle(opening: copy.indexPath, flags: flags, io: io)
        timeIndex = try FileHandle(opening: copy.timeIndexPath, flags: flags, io: io)
    }

    /// Adds the batch `header` describes, keeping `records` (`count` whole encoded records).
    mutating func add(_ header: RecordBatch.Header, records: [UInt8], count: UInt32) throws(StorageError) {
        guard count > 0 else {
            let maxTimestamp = max(pendingEmpty?.maxTimestamp ?? header.maxTimestamp, header.maxTimestamp)
            pendingEmpty = (pendingEmpty?.baseOffset ?? header.baseOffset, header, maxTimestamp)
            return
        }
        try flushEmpty()
        try append(RecordBatch.compacted(header, recordCount: count, records: records), header: header)
    }

    /// Writes what is left and the indexes, syncs the three files, and returns the copy's size.
    mutating func finish() throws(StorageError) -> Int {
        try flushEmpty()
        try flush()
        for (file, content) in [(index, indexes.offsets.encoded()), (timeIndex, indexes.times.encoded())] where !content.isEmpty {
            try withBytes(of: content) { (bytes) throws(StorageError) in try file.write(at: 0, bytes) }
        }
        for file in [log, index, timeIndex] { try file.sync() }
        return written
    }

    /// Writes the pending run of emptied batches as one empty batch over their offsets. Its
    /// producer fields are cleared: the idempotent-producer state never comes from cleaned
    /// segments (the newest ones are not cleaned).
    private mutating func flushEmpty() throws(StorageError) {
        guard let (firstOffset, last, maxTimestamp) = pendingEmpty else { return }
        pendingEmpty = nil
        var header = last
        header.lastOffsetDelta = UInt32(last.lastOffset - firstOffset)
        header.baseOffset = firstOffset
        header.firstTimestamp = maxTimestamp
        header.maxTimestamp = maxTimestamp
        header.producerID = -1
        header.producerEpoch = -1
        header.baseSequence = -1
        try append(RecordBatch.compacted(header, recordCount: 0, records: []), header: header)
    }

    private mutating func append(_ batch: [UInt8], header: RecordBatch.Header) throws(StorageError) {
        indexes.addBatch(relativeOffset: UInt32(header.baseOffset - baseOffset), position: written + buffer.count, size: batch.count,
                         maxTimestamp: header.maxTimestamp, interval: indexIntervalBytes)
        buffer += batch
        if buffer.count >= Self.bufferBytes { try flush() }
    }

    private mutating func flush() throws(StorageError) {
        guard !buffer.isEmpty else { return }
        try withBytes(of: buffer) { (bytes) throws(StorageError) in try log.write(at: written, bytes) }
        written += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }
}

/// The cleaned copies one ``LogCleaning`` pass wrote, for ``PartitionLog/install(_:)``.
public struct CleanedSegments: Sendable {
    /// The files of one segment's cleaned copy.
    struct Copy: Sendable {
        let directory: String
        let baseOffset: Int64
        /// The segment's size when the pass read it: the copy replaces only that.
        let originalSize: Int
        /// The copy's size, once written.
        var size = 0

        var logPath: String { path(LogSegment.logSuffix) }
        var indexPath: String { path(LogSegment.indexSuffix) }
        var timeIndexPath: String { path(LogSegment.timeIndexSuffix) }

        /// The copy of the segment file with `suffix`.
        func path(_ suffix: String) -> String {
            "\(directory)/\(LogSegment.fileName(baseOffset: baseOffset, suffix: suffix))\(LogSegment.cleanedSuffix)"
        }

        /// Deletes the copy's files (whatever exists of them).
        func remove() {
            for path in [logPath, indexPath, timeIndexPath] { _ = try? Syscall.unlinkIfPresent(path) }
        }
    }

    let copies: [Copy]
    /// What the pass removed.
    public let report: CleaningReport

    /// Deletes the copies, for a pass that is not installed.
    public func discard() {
        for copy in copies { copy.remove() }
    }
}

/// What one pass of the log cleaner found and removed.
public struct CleaningReport: Sendable, Hashable, CustomStringConvertible {
    /// Segments read.
    public var segmentsRead: Int
    /// Segments rewritten (those that lost records).
    public var segmentsCleaned = 0
    /// Distinct keys in the segments read.
    public var keys: Int
    /// Records removed: older records of a key, and expired tombstones.
    public var recordsRemoved = 0
    /// Of those, tombstones.
    public var tombstonesRemoved = 0
    /// Bytes of the segments read, before and after.
    public var bytesBefore = 0
    /// See ``bytesBefore``.
    public var bytesAfter = 0

    /// One line: "3 segments read, 2 cleaned: 1200 records removed (10 tombstones), 5100000 → 400000 bytes, 100 keys".
    public var description: String {
        "\(segmentsRead) segments read, \(segmentsCleaned) cleaned: \(recordsRemoved) records removed (\(tombstonesRemoved) tombstones), "
            + "\(bytesBefore) → \(bytesAfter) bytes, \(keys) keys"
    }
}
