import Glibc
import SpoolWire

/// One segment of a partition log: `<20-digit baseOffset>.log`, holding whole record batches
/// back to back, `<20-digit baseOffset>.index`, its sparse ``OffsetIndex``, and
/// `<20-digit baseOffset>.timeindex`, its ``TimeIndex``.
///
/// Invariants: bytes `[0, size)` of the `.log` are whole, valid batches with dense offsets from
/// `baseOffset` to `nextOffset - 1`; the `.index` and `.timeindex` files hold exactly the
/// entries of `indexes` (possibly followed by the leftover of a failed append).
/// Bytes after `size` can only be the leftover of a failed append whose rollback also failed;
/// they are never read, the next append overwrites them and recovery cuts them.
/// Not thread-safe: owned by its ``PartitionLog``; only the file handles are shared.
final class LogSegment {
    /// Digits of the base offset in file names (`%020d`), enough for any non-negative Int64.
    static let fileNameDigits = 20
    static let logSuffix = ".log"
    static let indexSuffix = ".index"
    static let timeIndexSuffix = ".timeindex"
    /// Suffix a segment's files get when retention removes them, until they are unlinked.
    static let deletedSuffix = ".deleted"
    /// Suffix of the file that keeps bytes cut by recovery.
    static let setAsideSuffix = ".corrupt"
    /// Suffix of a segment file's copy written by the log cleaner, until it replaces the file.
    static let cleanedSuffix = ".cleaned"
    /// Size of the baseOffset field that an append stamps in front of the caller's batch.
    static let stampedBaseOffsetSize = MemoryLayout<Int64>.size

    let baseOffset: Int64
    /// The partition directory holding the files.
    let directory: String
    let log: CachedFile
    let index: CachedFile
    let timeIndex: CachedFile
    private(set) var indexes = SegmentIndexes()
    /// Bytes of valid batches in the `.log`.
    private(set) var size: Int
    /// Offset of the next batch appended here.
    private(set) var nextOffset: Int64
    /// Whether the log cleaner rewrote the segment, read from its first batch when first asked.
    private var cleaned: Bool?

    /// The largest record timestamp in the segment (``TimeIndex/noTimestamp`` when empty).
    var maxTimestamp: Int64 { indexes.maxTimestamp }

    private init(baseOffset: Int64, directory: String, log: CachedFile, index: CachedFile, timeIndex: CachedFile, size: Int) {
        self.baseOffset = baseOffset
        self.directory = directory
        self.log = log
        self.index = index
        self.timeIndex = timeIndex
        self.size = size
        self.nextOffset = baseOffset
    }

    // MARK: Names

    /// `00000000000000000042.log` for base offset 42 and suffix `.log`.
    static func fileName(baseOffset: Int64, suffix: String) -> String {
        let digits = String(baseOffset)
        return String(repeating: "0", count: max(0, fileNameDigits - digits.count)) + digits + suffix
    }

    /// The base offset a `.log` file name stands for, or nil if the name is not 20 digits + `.log`.
    static func baseOffset(logFileName name: String) -> Int64? {
        guard name.hasSuffix(logSuffix) else { return nil }
        let digits = name.dropLast(logSuffix.count)
        guard digits.utf8.count == fileNameDigits, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        return Int64(digits)
    }

    // MARK: Create, open, recover

    /// The path of this segment's file with `suffix`.
    func path(_ suffix: String) -> String {
        "\(directory)/\(Self.fileName(baseOffset: baseOffset, suffix: suffix))"
    }

    /// Creates the empty files of a new segment (the caller syncs the directory), opened through `cache`.
    static func create(directory: String, baseOffset: Int64, io: FileIO, cache: OpenFileCache) throws(StorageError) -> LogSegment {
        let logPath = "\(directory)/\(fileName(baseOffset: baseOffset, suffix: logSuffix))"
        let log = try CachedFile(opening: logPath, flags: O_RDWR | O_CREAT | O_EXCL, io: io, cache: cache)
        do throws(StorageError) {
            let index = try CachedFile(opening: "\(directory)/\(fileName(baseOffset: baseOffset, suffix: indexSuffix))",
                                       flags: O_RDWR | O_CREAT | O_TRUNC, io: io, cache: cache)
            let timeIndex = try CachedFile(opening: "\(directory)/\(fileName(baseOffset: baseOffset, suffix: timeIndexSuffix))",
                                           flags: O_RDWR | O_CREAT | O_TRUNC, io: io, cache: cache)
            return LogSegment(baseOffset: baseOffset, directory: directory, log: log, index: index, timeIndex: timeIndex, size: 0)
        } catch {
            try? Syscall.unlink(logPath)
            throw error
        }
    }

    /// The stored indexes of a segment as read at open, or why they could not be used.
    struct StoredIndexes {
        var offsets: Result<OffsetIndex, StorageError>
        var times: Result<TimeIndex, StorageError>
    }

    /// Opens an existing segment and brings it to its invariants. With `fullScan` (the active
    /// segment, and every segment after an unclean shutdown) the whole `.log` is verified with
    /// ``recover(stored:indexIntervalBytes:)``; otherwise only
    /// ``sanityCheck(stored:indexIntervalBytes:)`` runs, which falls back to a full recovery when
    /// something does not add up. Returns what was cut or rebuilt.
    static func open(directory: String, baseOffset: Int64, fullScan: Bool, indexIntervalBytes: Int,
                     io: FileIO, cache: OpenFileCache) throws(StorageError) -> (LogSegment, RecoveryReport?) {
        let log = try CachedFile(opening: "\(directory)/\(fileName(baseOffset: baseOffset, suffix: logSuffix))", flags: O_RDWR, io: io, cache: cache)
        let indexPath = "\(directory)/\(fileName(baseOffset: baseOffset, suffix: indexSuffix))"
        let timeIndexPath = "\(directory)/\(fileName(baseOffset: baseOffset, suffix: timeIndexSuffix))"
        let stored = StoredIndexes(
            offsets: readStored(indexPath) { (bytes) throws(StorageError) in try OffsetIndex(decoding: bytes) },
            times: readStored(timeIndexPath) { (bytes) throws(StorageError) in try TimeIndex(decoding: bytes) })
        // Opened only if they must be written (rebuilt, cut, or appended to as the active segment's).
        let index = CachedFile(path: indexPath, flags: O_RDWR | O_CREAT, io: io, cache: cache)
        let timeIndex = CachedFile(path: timeIndexPath, flags: O_RDWR | O_CREAT, io: io, cache: cache)
        let segment = LogSegment(baseOffset: baseOffset, directory: directory, log: log, index: index, timeIndex: timeIndex,
                                 size: try log.size())
        let report = fullScan
            ? try segment.recover(stored: stored, indexIntervalBytes: indexIntervalBytes)
            : try segment.sanityCheck(stored: stored, indexIntervalBytes: indexIntervalBytes)
        return (segment, report)
    }

    /// The parsed index file at `path`, or why it cannot be used ("missing", a parse error).
    private static func readStored<Index>(_ path: String, _ parse: ([UInt8]) throws(StorageError) -> Index) -> Result<Index, StorageError> {
        Result { () throws(StorageError) in
            guard let bytes = try Syscall.readFile(path) else { throw StorageError(.notFound, "missing") }
            return try parse(bytes)
        }
    }

    /// Scans the whole `.log` batch by batch, checking every batch in full (header, checksum,
    /// records, dense offsets from `baseOffset`), and cuts it after the last valid batch, saving
    /// the cut bytes aside first (the copy and the cut are synced). Rebuilds both indexes from the
    /// scan; reports one as rebuilt when the stored one was missing, malformed, or differs from
    /// the scan below the cut. (Stored entries past the cut go with the cut.)
    func recover(stored: StoredIndexes, indexIntervalBytes: Int) throws(StorageError) -> RecoveryReport? {
        let fileSize = size
        var rebuilt = SegmentIndexes()
        var indexProblem: String?
        var verifier: StoredIndexVerifier?
        switch stored.offsets {
        case .success(let offsets): verifier = StoredIndexVerifier(offsets)
        case .failure(let error): indexProblem = error.message
        }
        let scan = try scan(from: 0, offset: baseOffset, end: fileSize, into: &rebuilt,
                            indexIntervalBytes: indexIntervalBytes, verifier: &verifier)
        indexProblem = indexProblem ?? verifier?.finish(validBytes: scan.validBytes)
        let timeIndexProblem = Self.problem(ofStored: stored.times, comparedTo: rebuilt.times)

        var reasons: [String] = []
        if let indexProblem { reasons.append("index rebuilt: \(indexProblem)") }
        if let timeIndexProblem { reasons.append("time index rebuilt: \(timeIndexProblem)") }
        var setAsidePath: String?
        if let stop = scan.stopReason {
            let aside = try setAsideIfRoom(from: scan.validBytes, to: fileSize)
            setAsidePath = aside.path
            reasons.append(aside.path == nil && aside.unsaved == nil ? "zero-filled tail at byte \(scan.validBytes)" : stop)
            if let unsaved = aside.unsaved { reasons.append(unsaved) }
            try log.truncate(to: scan.validBytes)
            try log.sync()
        }
        size = scan.validBytes
        nextOffset = scan.nextOffset
        try replaceIndexes(with: rebuilt, unlessEqualTo: stored)
        guard !reasons.isEmpty else { return nil }
        return RecoveryReport(
            path: log.path, validBytes: size, truncatedBytes: fileSize - size,
            firstLostOffset: fileSize > size ? nextOffset : nil,
            reason: reasons.joined(separator: "; "), indexRebuilt: indexProblem != nil || timeIndexProblem != nil,
            setAsidePath: setAsidePath)
    }

    /// Why a stored time index is wrong, or nil when it equals the rebuilt one up to the cut
    /// (entries past the rebuilt ones belong to cut batches).
    private static func problem(ofStored stored: Result<TimeIndex, StorageError>, comparedTo rebuilt: TimeIndex) -> String? {
        switch stored {
        case .failure(let error):
            return error.message
        case .success(let stored):
            let common = min(stored.entries.count, rebuilt.entries.count)
            if let wrong = (0..<common).first(where: { stored.entries[$0] != rebuilt.entries[$0] }) {
                return "entry \(wrong) says \(stored.entries[wrong]), the log says \(rebuilt.entries[wrong])"
            }
            return stored.entries.count < rebuilt.entries.count ? "\(rebuilt.entries.count - stored.entries.count) entries missing" : nil
        }
    }

    /// Cheap checks of a segment that was closed cleanly (Kafka's `sanityCheck`): both stored
    /// indexes parse and agree, the last index entry lies inside the log, the first batch carries
    /// the file's base offset, and the batches from the last index entry to the end of the file
    /// are whole and valid. Anything else runs the full ``recover(stored:indexIntervalBytes:)``.
    /// Entries missing at the indexes' tail are added without a report.
    func sanityCheck(stored: StoredIndexes, indexIntervalBytes: Int) throws(StorageError) -> RecoveryReport? {
        guard case .success(let offsets) = stored.offsets, case .success(let times) = stored.times else {
            return try recover(stored: stored, indexIntervalBytes: indexIntervalBytes)
        }
        if size == 0, offsets.entries.isEmpty, times.entries.isEmpty { return nil }
        guard let last = offsets.entries.last, Int(last.position) < size else {
            let problem = offsets.entries.isEmpty ? "no entries for a log of \(size) bytes" : "last entry points past the end of the log"
            return try recover(stored: StoredIndexes(offsets: .failure(StorageError(.corrupt, problem)), times: stored.times),
                               indexIntervalBytes: indexIntervalBytes)
        }
        var indexes = SegmentIndexes(offsets: offsets, times: times)
        let scanner = BatchScanner(file: try log.handle(), end: size, chunkSize: BatchScanner.lookupChunkSize)
        guard case .batch(let first) = try scanner.batch(at: 0, verify: false), first.baseOffset == baseOffset,
              indexes.truncate(toIndexedPosition: Int(last.position)) else {
            return try recover(stored: stored, indexIntervalBytes: indexIntervalBytes)
        }
        let (lastIndexedOffset, overflow) = baseOffset.addingReportingOverflow(Int64(last.relativeOffset))
        guard !overflow else { return try recover(stored: stored, indexIntervalBytes: indexIntervalBytes) }
        var noVerifier: StoredIndexVerifier?
        let scan = try scan(from: Int(last.position), offset: lastIndexedOffset, end: size, into: &indexes,
                            indexIntervalBytes: indexIntervalBytes, verifier: &noVerifier)
        guard scan.stopReason == nil else {
            return try recover(stored: stored, indexIntervalBytes: indexIntervalBytes)
        }
        nextOffset = scan.nextOffset
        try replaceIndexes(with: indexes, unlessEqualTo: stored)
        return nil
    }

    private struct Scan {
        /// End of the last valid batch.
        var validBytes: Int
        var nextOffset: Int64
        /// Why the scan stopped before the end, if it did.
        var stopReason: String?
    }

    /// Walks batches from `position` (a batch start holding `offset`) to `end`, checking each in
    /// full and adding it to `indexes` (and to `verifier`), until the end or the first batch that
    /// is torn, invalid, or not at the next dense offset.
    private func scan(from position: Int, offset: Int64, end: Int, into indexes: inout SegmentIndexes, indexIntervalBytes: Int,
                      verifier: inout StoredIndexVerifier?) throws(StorageError) -> Scan {
        let scanner = BatchScanner(file: try log.handle(), end: end, chunkSize: BatchScanner.recoveryChunkSize)
        var result = Scan(validBytes: position, nextOffset: offset)
        while true {
            let header: RecordBatch.Header
            switch try scanner.batch(at: result.validBytes, verify: true) {
            case .end:
                return result
            case .invalid(let reason):
                result.stopReason = reason
                return result
            case .batch(let found):
                header = found
            }
            guard header.baseOffset == result.nextOffset else {
                result.stopReason = result.validBytes == 0
                    ? "first batch has base offset \(header.baseOffset), but the file name says \(baseOffset)"
                    : "batch at byte \(result.validBytes) has base offset \(header.baseOffset), expected \(result.nextOffset)"
                return result
            }
            guard header.lastOffset - baseOffset <= Int64(UInt32.max) else {
                result.stopReason = "batch at byte \(result.validBytes) ends at offset \(header.lastOffset), beyond the 32-bit range of segment \(baseOffset)"
                return result
            }
            let relativeOffset = UInt32(header.baseOffset - baseOffset)
            verifier?.check(batchAt: result.validBytes, relativeOffset: relativeOffset)
            indexes.addBatch(relativeOffset: relativeOffset, position: result.validBytes, size: header.totalSize,
                             maxTimestamp: header.maxTimestamp, interval: indexIntervalBytes)
            result.validBytes += header.totalSize
            result.nextOffset = header.nextOffset
        }
    }

    /// ``setAside(from:to:)``, except that a disk without room for the copy (full, quota, size
    /// limit) does not stop the recovery: the bytes are cut without a copy, and `unsaved` says
    /// so and why, for the report (the cut bytes are a torn or corrupt tail: under `fsync:
    /// always` never acknowledged).
    private func setAsideIfRoom(from start: Int, to end: Int) throws(StorageError) -> (path: String?, unsaved: String?) {
        do throws(StorageError) {
            return (try setAside(from: start, to: end), nil)
        } catch where error.isOutOfSpace {
            return (nil, error.cutWithoutCopy(of: end - start))
        }
    }

    /// Copies bytes `[start, end)` of the `.log` to a new file (see ``createSetAsideFile(cutAt:)``)
    /// and makes it durable, unless they are all zero (a tail the file system extended but never
    /// wrote). Returns the copy's path. If it fails, the partial copy is removed.
    private func setAside(from start: Int, to end: Int) throws(StorageError) -> String? {
        var copy: FileHandle?
        do throws(StorageError) {
            var chunk = [UInt8](repeating: 0, count: min(end - start, BatchScanner.recoveryChunkSize))
            var position = start
            while position < end {
                let count = try withMutableBytes(of: &chunk) { (buffer) throws(StorageError) in
                    try log.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<min(buffer.count, end - position)]), at: position)
                }
                guard count > 0 else { break }
                // Zero chunks become holes of the copy, which read back as zeros.
                if chunk[..<count].contains(where: { $0 != 0 }) {
                    if copy == nil { copy = try createSetAsideFile(cutAt: start) }
                    try withBytes(of: chunk) { (buffer) throws(StorageError) in
                        try copy?.write(at: position - start, UnsafeRawBufferPointer(rebasing: buffer[..<count]))
                    }
                }
                position += count
            }
            guard let copy else { return nil }
            try copy.truncate(to: end - start)
            try copy.sync()
            try log.io.syncDirectory(directory)
            return copy.path
        } catch {
            if let copy { _ = try? Syscall.unlinkIfPresent(copy.path) }
            throw error
        }
    }

    /// Creates `<log>.<start>.corrupt`, or `<log>.<start>.<n>.corrupt` when earlier recoveries
    /// left copies under that name: a copy is never overwritten.
    private func createSetAsideFile(cutAt start: Int) throws(StorageError) -> FileHandle {
        var attempt = 0
        while true {
            let path = "\(log.path).\(start)" + (attempt == 0 ? "" : ".\(attempt)") + Self.setAsideSuffix
            do throws(StorageError) {
                return try FileHandle(opening: path, flags: O_WRONLY | O_CREAT | O_EXCL, io: log.io)
            } catch where error.errno == EEXIST {
                attempt += 1
            }
        }
    }

    /// Makes the index files hold exactly `indexes`, rewriting each one unless it already does.
    private func replaceIndexes(with indexes: SegmentIndexes, unlessEqualTo stored: StoredIndexes) throws(StorageError) {
        self.indexes = indexes
        if indexes.offsets != (try? stored.offsets.get()) { try Self.replace(index, with: indexes.offsets.encoded()) }
        if indexes.times != (try? stored.times.get()) { try Self.replace(timeIndex, with: indexes.times.encoded()) }
    }

    private static func replace(_ file: CachedFile, with bytes: [UInt8]) throws(StorageError) {
        try withBytes(of: bytes) { (buffer) throws(StorageError) in try file.write(at: 0, buffer) }
        try file.truncate(to: bytes.count)
    }

    // MARK: Append

    /// True if a batch of `byteCount` bytes whose last offset is `lastOffset` may not join this
    /// segment: it would pass `maximumBytes`, or its offsets would leave the 32-bit range of the
    /// index. An empty segment takes any batch.
    func isFull(adding byteCount: Int, lastOffset: Int64, maximumBytes: Int) -> Bool {
        size > 0 && (size + byteCount > min(maximumBytes, Int(UInt32.max)) || lastOffset - baseOffset > Int64(UInt32.max))
    }

    /// Writes `batch` at the end of the `.log` with `nextOffset` stamped as its base offset,
    /// without copying or changing the caller's buffer, and indexes it. If a write fails, the
    /// files are cut back to their previous size and the segment is unchanged.
    func append(_ batch: UnsafeRawBufferPointer, header: RecordBatch.Header, indexIntervalBytes: Int) throws(StorageError) {
        let position = size
        let relativeOffset = UInt32(nextOffset - baseOffset)
        let indexSize = indexes.offsets.entries.count * OffsetIndex.entrySize
        let timeIndexSize = indexes.times.entries.count * TimeIndex.entrySize
        do throws(StorageError) {
            if let (offsetEntry, timeEntry) = indexes.entries(forBatchAt: relativeOffset, position: position, interval: indexIntervalBytes) {
                var entryBytes: (UInt64, UInt64) = (0, 0)
                try withUnsafeMutableBytes(of: &entryBytes) { (bytes) throws(StorageError) in
                    offsetEntry.store(into: bytes)
                    try index.write(at: indexSize, UnsafeRawBufferPointer(rebasing: bytes[..<OffsetIndex.entrySize]))
                    timeEntry.store(into: bytes)
                    try timeIndex.write(at: timeIndexSize, UnsafeRawBufferPointer(rebasing: bytes[..<TimeIndex.entrySize]))
                }
            }
            // Bytes written to the .log, in one pwritev:
            // offset size field
            //  0     8   baseOffset   i64 little-endian: this log's nextOffset (the caller's buffer keeps its own)
            //  8     …   the caller's batch from byte 8 on: batchLength, magic, crc, … (see RecordBatch)
            var stampedBaseOffset = nextOffset.littleEndian
            try withUnsafeBytes(of: &stampedBaseOffset) { (stamp) throws(StorageError) in
                try log.write(at: position, stamp, UnsafeRawBufferPointer(rebasing: batch[Self.stampedBaseOffsetSize...]))
            }
        } catch {
            // If these cuts fail too, the leftovers lie past `size`: never read, overwritten by the
            // next append, cut by recovery.
            try? log.truncate(to: position)
            try? index.truncate(to: indexSize)
            try? timeIndex.truncate(to: timeIndexSize)
            throw error
        }
        indexes.addBatch(relativeOffset: relativeOffset, position: position, size: batch.count,
                         maxTimestamp: header.maxTimestamp, interval: indexIntervalBytes)
        size += batch.count
        nextOffset += Int64(header.lastOffsetDelta) + 1
    }

    /// Cuts both index files to exactly their entries, for a segment that is rolled away or closed.
    func sealIndexes() throws(StorageError) {
        try index.truncate(to: indexes.offsets.entries.count * OffsetIndex.entrySize)
        try timeIndex.truncate(to: indexes.times.entries.count * TimeIndex.entrySize)
    }

    /// The byte position of the batch whose base offset is `offset`, or `size` for `nextOffset`.
    /// Throws ``StorageError/Code/invalidArgument`` if no batch of this segment starts there.
    func position(ofBatchStartingAt offset: Int64) throws(StorageError) -> Int {
        guard offset >= baseOffset, offset <= nextOffset else {
            throw StorageError(.invalidArgument, "\(log.path): offset \(offset) is outside \(baseOffset)...\(nextOffset)")
        }
        guard offset < nextOffset else { return size }
        let scanner = BatchScanner(file: try log.handle(), end: size, chunkSize: BatchScanner.lookupChunkSize)
        let (position, batch) = try self.batch(holding: offset, scanner: scanner)
        guard batch.baseOffset == offset else {
            throw StorageError(.invalidArgument, "\(log.path): offset \(offset) lies inside the batch of offsets \(batch.baseOffset)...\(batch.lastOffset)")
        }
        return position
    }

    /// Cuts the segment at byte `position`, the start of a batch (from
    /// ``position(ofBatchStartingAt:)``) or `size`: the `.log` and both indexes lose everything
    /// from there on. Used to drop appends whose sync failed.
    func truncate(toPosition position: Int, indexIntervalBytes: Int) throws(StorageError) {
        guard position < size else { return }
        try log.truncate(to: position)
        // Rebuild the indexes' tail from the nearest entry below the cut.
        var rebuilt = indexes
        if let kept = rebuilt.offsets.entry(atOrBelowPosition: position - 1), rebuilt.truncate(toIndexedPosition: Int(kept.position)) {
            var noVerifier: StoredIndexVerifier?
            let scan = try scan(from: Int(kept.position), offset: baseOffset + Int64(kept.relativeOffset), end: position, into: &rebuilt,
                                indexIntervalBytes: indexIntervalBytes, verifier: &noVerifier)
            nextOffset = scan.nextOffset
        } else {
            rebuilt = SegmentIndexes()
            nextOffset = baseOffset
        }
        size = position
        indexes = rebuilt
        try sealIndexes()
    }

    /// Cuts the batches that hold offsets at or after `offset` (the base offset of the segment
    /// after this one, which overlaps it: offsets stored twice), copying the cut bytes aside;
    /// the next segment's copy is kept. Returns the report, or nil if nothing overlapped.
    func cutOverlap(before offset: Int64, indexIntervalBytes: Int) throws(StorageError) -> RecoveryReport? {
        guard nextOffset > offset else { return nil }
        var position = 0
        for header in try batchHeaders() {
            guard header.nextOffset <= offset else { break }
            position += header.totalSize
        }
        let (cutBytes, endBefore) = (size - position, nextOffset)
        let aside = try setAsideIfRoom(from: position, to: size)
        try truncate(toPosition: position, indexIntervalBytes: indexIntervalBytes)
        return RecoveryReport(
            path: log.path, validBytes: position, truncatedBytes: cutBytes, firstLostOffset: nil,
            reason: "offsets \(nextOffset)..<\(endBefore) were also stored by the next segment, which starts at \(offset); cut them here and kept the next segment's copy"
                + (aside.unsaved.map { "; \($0)" } ?? ""),
            indexRebuilt: true, setAsidePath: aside.path)
    }

    /// Renames the segment's files to `<name>.deleted`, so that it is gone from the log at once and
    /// a crash before the files are unlinked leaves nothing recovery would read. Returns the new paths.
    func renameForDeletion() throws(StorageError) -> [String] {
        var renamed: [String] = []
        for suffix in [Self.logSuffix, Self.indexSuffix, Self.timeIndexSuffix] {
            let path = path(suffix)
            try Syscall.rename(path, to: path + Self.deletedSuffix)
            renamed.append(path + Self.deletedSuffix)
        }
        return renamed
    }

    // MARK: Read

    /// Whole batches from the first one holding an offset at or after `offset`, up to `maxBytes`
    /// (at least one batch) and only batches whose baseOffset is below `endOffset`. Nil when no
    /// such batch is in this segment.
    func read(from offset: Int64, maxBytes: Int, endOffset: Int64) throws(StorageError) -> LogSlice? {
        guard offset < nextOffset, offset < endOffset else { return nil }
        let scanner = BatchScanner(file: try log.handle(), end: size, chunkSize: BatchScanner.lookupChunkSize)
        let (start, first) = try batch(holding: offset, scanner: scanner)
        guard first.baseOffset < endOffset else { return nil }
        let limit = start + min(max(maxBytes, 0), size - start)
        if endOffset >= nextOffset && limit == size {
            return LogSlice(file: try log.handle(), position: start, length: size - start, firstOffset: first.baseOffset, nextOffset: nextOffset)
        }
        // Skip ahead by index entries that satisfy both bounds, then walk headers to the exact end.
        var end = start + first.totalSize
        var sliceNextOffset = first.nextOffset
        if let byPosition = indexes.offsets.entry(atOrBelowPosition: limit),
           let byOffset = indexes.offsets.entry(atOrBelowOffset: endOffset - baseOffset) {
            let jump = Int(byPosition.position) < Int(byOffset.position) ? byPosition : byOffset
            if Int(jump.position) > end {
                end = Int(jump.position)
                sliceNextOffset = baseOffset + Int64(jump.relativeOffset)
            }
        }
        while end < size {
            let next = try header(at: end, scanner: scanner)
            guard end + next.totalSize <= limit, next.baseOffset < endOffset else { break }
            end += next.totalSize
            sliceNextOffset = next.nextOffset
        }
        return LogSlice(file: try log.handle(), position: start, length: end - start, firstOffset: first.baseOffset, nextOffset: sliceNextOffset)
    }

    /// Whether the log cleaner rewrote the segment (it marks every batch it writes compacted):
    /// batch positions recorded before, such as key-index postings, no longer hold. One read of
    /// the first batch header, the first time only.
    func isCleaned() throws(StorageError) -> Bool {
        if let cleaned { return cleaned }
        var found = false
        if size > 0 { found = try header(at: 0, scanner: BatchScanner(file: try log.handle(), end: size, chunkSize: RecordBatch.headerSize)).isCompacted }
        cleaned = found
        return found
    }

    /// The batch holding `offset` (below `nextOffset`) as a slice of its own.
    func slice(ofBatchHolding offset: Int64) throws(StorageError) -> LogSlice {
        let scanner = BatchScanner(file: try log.handle(), end: size, chunkSize: BatchScanner.lookupChunkSize)
        let (position, header) = try batch(holding: offset, scanner: scanner)
        return LogSlice(file: try log.handle(), position: position, length: header.totalSize, firstOffset: header.baseOffset, nextOffset: header.nextOffset)
    }

    /// Calls `body` with the position, header and bytes of every batch from the one holding
    /// `offset` to the end, in order (the bytes are valid only during the call).
    func forEachBatch(from offset: Int64,
                      _ body: (_ position: Int, _ header: RecordBatch.Header, _ batch: UnsafeRawBufferPointer) throws(StorageError) -> Void) throws(StorageError) {
        guard offset < nextOffset else { return }
        let scanner = BatchScanner(file: try log.handle(), end: size, chunkSize: BatchScanner.recoveryChunkSize)
        var position = try batch(holding: offset, scanner: scanner).position
        while position < size {
            let header = try header(at: position, scanner: scanner)
            try body(position, header, try scanner.bytes(at: position, count: header.totalSize))
            position += header.totalSize
        }
    }

    /// The header of every batch, in order (the bytes up to `size` are whole valid batches).
    func batchHeaders() throws(StorageError) -> [RecordBatch.Header] {
        let scanner = BatchScanner(file: try log.handle(), end: size, chunkSize: BatchScanner.lookupChunkSize)
        var headers: [RecordBatch.Header] = []
        var position = 0
        while position < size {
            let batch = try header(at: position, scanner: scanner)
            headers.append(batch)
            position += batch.totalSize
        }
        return headers
    }

    /// The position and header of the batch holding `offset` (below `nextOffset`): the nearest
    /// index entry at or below it (binary search), then a walk of batch headers.
    private func batch(holding offset: Int64, scanner: BatchScanner) throws(StorageError) -> (position: Int, header: RecordBatch.Header) {
        var position = indexes.offsets.entry(atOrBelowOffset: offset - baseOffset).map { Int($0.position) } ?? 0
        var batch = try header(at: position, scanner: scanner)
        while batch.lastOffset < offset {
            position += batch.totalSize
            batch = try header(at: position, scanner: scanner)
        }
        return (position, batch)
    }

    /// The offset of the first record whose timestamp is at or after `timestamp`, if any: the
    /// time index gives the batch to start from (binary search), the offset index its position,
    /// then batch headers are walked to the first batch whose maxTimestamp is at or after it.
    func firstOffset(atOrAfterTimestamp timestamp: Int64) throws(StorageError) -> Int64? {
        guard maxTimestamp >= timestamp else { return nil }
        let start = Int64(indexes.times.startRelativeOffset(forTimestamp: timestamp))
        let scanner = BatchScanner(file: try log.handle(), end: size, chunkSize: BatchScanner.lookupChunkSize)
        var position = indexes.offsets.entry(atOrBelowOffset: start).map { Int($0.position) } ?? 0
        while position < size {
            let batch = try header(at: position, scanner: scanner)
            if batch.maxTimestamp >= timestamp { return try firstOffset(in: batch, at: position, atOrAfterTimestamp: timestamp) }
            position += batch.totalSize
        }
        return nil
    }

    /// The first record of the batch at `position` created at or after `timestamp` (a batch's
    /// records need not be in time order, and only its maxTimestamp is in the header).
    private func firstOffset(in batch: RecordBatch.Header, at position: Int, atOrAfterTimestamp timestamp: Int64) throws(StorageError) -> Int64 {
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: batch.totalSize, alignment: MemoryLayout<UInt64>.alignment)
        defer { bytes.deallocate() }
        guard try log.read(into: bytes, at: position) == batch.totalSize else {
            throw StorageError(.io, "read from \(log.path) ended inside the batch at byte \(position)")
        }
        do throws(WireError) {
            return try RecordBatch.records(in: UnsafeRawBufferPointer(bytes)).first { $0.timestamp >= timestamp }?.offset ?? batch.baseOffset
        } catch {
            throw StorageError(.corrupt, "\(log.path): batch at byte \(position): \(error.message)")
        }
    }

    /// The header of the batch at `position` inside `[0, size)`, which the invariants say is valid;
    /// ``StorageError/Code/corrupt`` if the file says otherwise (changed behind the broker's back,
    /// a bad index entry or a flipped bit in the unchecksummed base offset of a sealed segment).
    private func header(at position: Int, scanner: BatchScanner) throws(StorageError) -> RecordBatch.Header {
        let header: RecordBatch.Header
        switch try scanner.batch(at: position, verify: false) {
        case .batch(let found): header = found
        case .end: throw StorageError(.corrupt, "\(log.path) ends at byte \(position), inside the log's \(size) bytes")
        case .invalid(let reason): throw StorageError(.corrupt, "\(log.path): \(reason)")
        }
        // Checked in this order, so that computing `lastOffset` cannot overflow.
        guard header.baseOffset >= baseOffset, header.baseOffset < nextOffset, header.lastOffset < nextOffset else {
            throw StorageError(.corrupt, "\(log.path): batch at byte \(position) has base offset \(header.baseOffset), outside \(baseOffset)..<\(nextOffset)")
        }
        return header
    }
}

/// Checks, during a recovery scan, that each stored index entry points at a batch start and
/// names that batch's offset; remembers the first one that does not.
private struct StoredIndexVerifier {
    private let entries: [OffsetIndex.Entry]
    private var next = 0
    private var problem: String?

    init(_ index: OffsetIndex) { entries = index.entries }

    /// Called for every batch in order of position.
    mutating func check(batchAt position: Int, relativeOffset: UInt32) {
        skipEntries(below: position)
        guard next < entries.count, Int(entries[next].position) == position else { return }
        if entries[next].relativeOffset != relativeOffset, problem == nil {
            problem = "entry \(next) says byte \(position) holds relative offset \(entries[next].relativeOffset), the batch there has \(relativeOffset)"
        }
        next += 1
    }

    /// The first problem found among the entries below `validBytes` (entries past the cut are
    /// dropped with it), or nil.
    mutating func finish(validBytes: Int) -> String? {
        skipEntries(below: validBytes)
        return problem
    }

    private mutating func skipEntries(below position: Int) {
        while next < entries.count, Int(entries[next].position) < position {
            if problem == nil {
                problem = "entry \(next) points at byte \(entries[next].position), which is not a batch start"
            }
            next += 1
        }
    }
}
