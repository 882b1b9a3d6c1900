import Glibc
import Logging
import Metrics
import SpoolWire

/// One partition's log: an ordered list of segments, `<20-digit baseOffset>.log` plus `.index`
/// and `.timeindex`, in one directory. Batches are appended to the last (active) segment and get
/// dense offsets; retention deletes whole segments from the front.
///
/// Invariants: segments are sorted by baseOffset and none is empty except possibly the active one
/// (or one a recovery emptied); every segment holds whole, valid batches with dense offsets
/// (recovery reports any gap between segments and reads skip it); `logEndOffset` is the active
/// segment's nextOffset; what the files hold past the logical end is never read.
///
/// Not thread-safe: owned by the broker's network loop thread. The values it hands out
/// (``LogSlice``, ``SyncWork``) are `Sendable` and may be used on other threads.
public final class PartitionLog {
    /// What recovery cut or rebuilt while this log opened, one report per segment concerned.
    /// Each was also logged at warning.
    public private(set) var recoveryReports: [RecoveryReport] = []
    /// The partition directory.
    public let directory: String
    /// The settings used from the next call on.
    public var configuration: LogConfiguration
    /// First offset still stored.
    public private(set) var logStartOffset: Int64
    /// Offset the next appended record gets.
    public private(set) var logEndOffset: Int64
    /// Bytes of all segments.
    public private(set) var sizeInBytes: Int
    /// Number of segments (at least 1 while open).
    public var segmentCount: Int { segments.count }
    /// What the key index holds and costs.
    public var keyIndexStatistics: KeyIndexStatistics { keyIndex.statistics }

    private let logger: Logger
    private let io: FileIO
    /// Sorted by baseOffset; never empty while open.
    private var segments: [LogSegment]
    /// Opens and closes the files of the segments, the key index and the directory.
    private let openFiles: OpenFileCache
    /// The partition directory, opened only to be synced.
    private let directoryFile: CachedFile
    /// Files written since the last ``takeSyncWork()``, in order, each once.
    private var unsyncedFiles: [CachedFile] = []
    /// The descriptors those writes went through, kept open until the sync that covers them has
    /// run (not under `fsync: never`, where nothing syncs before a shutdown).
    private var writtenDescriptors: [FileHandle] = []
    /// True when a file was created in the directory since the last ``takeSyncWork()``.
    private var directoryIsUnsynced = false
    private var isClosed = false
    /// When the active segment took its first append in this process; nil while it has none.
    private var activeSegmentStartedAt: ContinuousClock.Instant?
    /// Every key's batches and last offset (see ``lastOffset(ofKey:)``).
    private var keyIndex: KeyIndex
    /// Set when swapping in a cleaned segment failed half-way: the files may disagree, so the
    /// next open must check them (``closeCleanly()`` refuses).
    private var needsFullCheck = false

    /// How much of the log an open verifies.
    public enum OpenMode: Sendable {
        /// The previous process may have crashed: every segment is verified in full (headers,
        /// checksums, records, dense offsets), so a torn tail or a corrupt batch anywhere is found.
        case afterCrash
        /// The previous process closed this log with ``closeCleanly()`` and nothing wrote since:
        /// every segment only gets cheap checks (indexes parse and agree with the last batches).
        case afterCleanShutdown
    }

    /// Opens the log in `directory` (creating the directory and a first segment if missing) and
    /// recovers it. After a crash (`mode` ``OpenMode/afterCrash``, the default) every segment is
    /// scanned batch by batch (header, checksum, records, dense offsets) and cut after its last
    /// valid batch, so a torn, garbage or zero-filled tail, or a corrupt batch in the middle of
    /// a sealed segment, ends there (the segment stays readable up to it and the lost offset
    /// range is reported); indexes are rebuilt if missing, malformed or stale. After a clean
    /// shutdown only cheap checks run, falling back to the scan when they fail. A `.log` whose
    /// first batch does not carry the offset of its name, and gaps between segments, are
    /// reported. Bytes cut are saved aside (see ``RecoveryReport/setAsidePath``); files left by
    /// an interrupted retention (`*.deleted`) are removed. Never traps on a corrupt file; throws
    /// only when a file cannot be read or written.
    ///
    /// Its files are opened through `openFiles` (by default a cache of its own that never closes
    /// them): share one bounded ``OpenFileCache`` between the logs of a broker to bound their
    /// descriptors.
    public convenience init(directory: String, configuration: LogConfiguration, mode: OpenMode = .afterCrash,
                            logger: Logger, openFiles: OpenFileCache = OpenFileCache()) throws(StorageError) {
        try self.init(directory: directory, configuration: configuration, mode: mode, logger: logger, io: .system, openFiles: openFiles)
    }

    /// Opens the log with every write, truncation and sync going through `io` (for fault injection).
    @_spi(Testing) public init(directory: String, configuration: LogConfiguration, mode: OpenMode = .afterCrash,
                               logger: Logger, io: FileIO, openFiles: OpenFileCache = OpenFileCache()) throws(StorageError) {
        self.directory = directory
        self.configuration = configuration
        self.logger = logger
        self.io = io
        self.openFiles = openFiles
        try Syscall.makeDirectories(directory)
        directoryFile = CachedFile(path: directory, flags: O_RDONLY | O_DIRECTORY, isDirectory: true, io: io, cache: openFiles)
        let names = try Syscall.listDirectory(directory)
        for leftover in names where leftover.hasSuffix(LogSegment.deletedSuffix) || leftover.hasSuffix(LogSegment.cleanedSuffix) {
            // Deleted segments (the background deleter may get there first), a cleaner's copies not swapped in.
            try Syscall.unlinkIfPresent("\(directory)/\(leftover)")
        }
        let baseOffsets = names.compactMap(LogSegment.baseOffset(logFileName:)).sorted()
        var (segments, reports) = try Self.openSegments(baseOffsets, directory: directory, mode: mode, configuration: configuration,
                                                        io: io, cache: openFiles)
        if segments.isEmpty {
            segments.append(try LogSegment.create(directory: directory, baseOffset: 0, io: io, cache: openFiles))
            directoryIsUnsynced = true
        }
        self.segments = segments
        recoveryReports = reports
        logStartOffset = segments[0].baseOffset
        logEndOffset = segments[segments.count - 1].nextOffset
        sizeInBytes = segments.reduce(0) { $0 + $1.size }
        if segments[segments.count - 1].size > 0 { activeSegmentStartedAt = .now }
        keyIndex = try KeyIndex(directory: directory, io: io, cache: openFiles, logger: logger)
        do throws(StorageError) {
            try keyIndex.resume(logStartOffset: logStartOffset, trustedEnd: trustedKeyIndexEnd())
            try indexKeys(from: keyIndex.activeStart, to: logEndOffset)
        } catch where error.code == .corrupt && mode == .afterCleanShutdown {
            // The cheap checks missed damage that indexing the keys read: verify everything.
            logger.warning("a segment is damaged although the log was closed cleanly; verifying every segment",
                           metadata: ["directory": "\(directory)", "error": "\(error.message)"])
            (self.segments, recoveryReports) = try Self.openSegments(baseOffsets, directory: directory, mode: .afterCrash,
                                                                    configuration: configuration, io: io, cache: openFiles)
            logStartOffset = self.segments[0].baseOffset
            logEndOffset = self.segments[self.segments.count - 1].nextOffset
            sizeInBytes = self.segments.reduce(0) { $0 + $1.size }
            keyIndex = try KeyIndex(directory: directory, io: io, cache: openFiles, logger: logger)
            try keyIndex.resume(logStartOffset: logStartOffset, trustedEnd: logStartOffset)
            try indexKeys(from: keyIndex.activeStart, to: logEndOffset)
        }
        for report in recoveryReports {
            logger.warning("recovered a damaged segment", metadata: ["report": "\(report)"])
        }
        if !recoveryReports.isEmpty { Counter(label: "spool_recovery_cuts_total").increment(by: recoveryReports.count) }
    }

    /// Where key-index files stop being trusted: the first offset of the first segment recovery
    /// repaired (a file may point into what it cut), else the log's end.
    private func trustedKeyIndexEnd() -> Int64 {
        let repaired = recoveryReports.compactMap { report in
            LogSegment.baseOffset(logFileName: String(report.path.split(separator: "/").last ?? ""))
        }
        return min(repaired.min() ?? logEndOffset, logEndOffset)
    }

    /// Opens and recovers the segments with these base offsets, cutting overlaps and reporting gaps.
    private static func openSegments(_ baseOffsets: [Int64], directory: String, mode: OpenMode, configuration: LogConfiguration,
                                     io: FileIO, cache: OpenFileCache) throws(StorageError) -> ([LogSegment], [RecoveryReport]) {
        var segments: [LogSegment] = []
        var reports: [RecoveryReport] = []
        for baseOffset in baseOffsets {
            let (segment, report) = try LogSegment.open(
                directory: directory, baseOffset: baseOffset, fullScan: mode == .afterCrash,
                indexIntervalBytes: configuration.indexIntervalBytes, io: io, cache: cache)
            if let previous = segments.last {
                if let cut = try previous.cutOverlap(before: segment.baseOffset, indexIntervalBytes: configuration.indexIntervalBytes) {
                    reports.append(cut)
                }
                if previous.nextOffset != segment.baseOffset { reports.append(gapReport(between: previous, and: segment)) }
            }
            if let report { reports.append(report) }
            segments.append(segment)
        }
        return (segments, reports)
    }

    /// Adds the keys of every batch in `offset..<end` (batch boundaries) to the key index, writing
    /// its active run to a file whenever it fills up.
    private func indexKeys(from offset: Int64, to end: Int64) throws(StorageError) {
        try forEachBatch(from: offset, to: end) { (keys, posting, nextOffset) throws(StorageError) in
            keyIndex.add(keys, baseOffset: posting.baseOffset, position: Int(posting.position), length: Int(posting.length))
            if keyIndex.isActiveRunFull(maxKeys: configuration.keyIndexKeysInMemory) { try keyIndex.writeActiveRun(endingAt: nextOffset) }
        }
    }

    /// Calls `body` with the keys, place and next offset of every batch in `offset..<end`
    /// (batch boundaries), reading the segments.
    private func forEachBatch(from offset: Int64, to end: Int64,
                              _ body: (BatchKeys, KeyPosting, Int64) throws(StorageError) -> Void) throws(StorageError) {
        var number = max(segments.partitioningIndex { $0.baseOffset > offset } - 1, 0)
        while number < segments.count, segments[number].baseOffset < end {
            try segments[number].forEachBatch(from: max(offset, segments[number].baseOffset)) { (position, header, batch) throws(StorageError) in
                guard header.baseOffset < end else { return }
                try body(try BatchKeys.of(batch),
                         KeyPosting(baseOffset: header.baseOffset, lastDelta: 0, position: UInt32(position), length: UInt32(batch.count)),
                         header.nextOffset)
            }
            number += 1
        }
    }

    private static func gapReport(between previous: LogSegment, and next: LogSegment) -> RecoveryReport {
        let what = previous.nextOffset < next.baseOffset
            ? "offsets \(previous.nextOffset)..<\(next.baseOffset) are missing"
            : "offsets \(next.baseOffset)..<\(previous.nextOffset) are stored twice"
        return RecoveryReport(
            path: next.log.path, validBytes: next.size, truncatedBytes: 0, firstLostOffset: nil,
            reason: "\(what): the previous segment ends at offset \(previous.nextOffset), this one starts at \(next.baseOffset)",
            indexRebuilt: false)
    }

    deinit { close() }

    // MARK: Append

    /// Appends one batch that the caller already checked with `RecordBatch.validate`, giving it
    /// baseOffset = ``logEndOffset``. The caller's buffer is neither copied nor changed: the
    /// stamped base offset and the rest of the batch go to the file in one `pwritev`. Rolls to a
    /// new segment first when the active one is non-empty and would pass `segmentBytes`, or took
    /// its first append `segmentMilliseconds` or more before `now`.
    ///
    /// If a write fails (ENOSPC, EIO, a short write), the segment is cut back to its previous size,
    /// the log is unchanged, ``StorageError/Code/io`` is thrown, and the next append works once
    /// the cause is gone. Throws ``StorageError/Code/invalidArgument`` if `batch` is not one whole
    /// batch by its header, and ``StorageError/Code/closed`` after ``close()``.
    ///
    /// `keys`: the batch's keys if the caller collected them while validating it (else they are
    /// read from the records here), for the key index.
    public func append(_ batch: UnsafeRawBufferPointer, keys: BatchKeys? = nil, at now: ContinuousClock.Instant = .now) throws(StorageError) -> AppendResult {
        try checkOpen()
        let header: RecordBatch.Header
        do throws(WireError) {
            header = try RecordBatch.readHeader(batch)
        } catch {
            throw StorageError(.invalidArgument, "cannot append to \(directory): \(error.message)")
        }
        guard header.totalSize == batch.count else {
            throw StorageError(.invalidArgument, "cannot append to \(directory): batch length says \(header.totalSize) bytes, the buffer has \(batch.count)")
        }
        let baseOffset = logEndOffset
        let lastOffset = baseOffset + Int64(header.lastOffsetDelta)
        if active.isFull(adding: batch.count, lastOffset: lastOffset, maximumBytes: configuration.segmentBytes) || isActiveSegmentOld(at: now) {
            try roll()
        }
        let batchKeys: BatchKeys
        if let keys { batchKeys = keys } else { batchKeys = try BatchKeys.of(batch) }
        let position = active.size
        try active.append(batch, header: header, indexIntervalBytes: configuration.indexIntervalBytes)
        if activeSegmentStartedAt == nil { activeSegmentStartedAt = now }
        logEndOffset = lastOffset + 1
        sizeInBytes += batch.count
        markUnsynced(active.log)
        keyIndex.add(batchKeys, baseOffset: baseOffset, position: position, length: batch.count)
        if keyIndex.isActiveRunFull(maxKeys: configuration.keyIndexKeysInMemory) {
            do throws(StorageError) {
                try keyIndex.writeActiveRun(endingAt: logEndOffset)
            } catch {
                // The batch is stored; its keys stay in memory and the write is tried at the next append.
                logger.warning("could not write a key index file; the keys stay in memory", metadata: [
                    "directory": "\(directory)", "error": "\(error.message)",
                ])
            }
        }
        return AppendResult(baseOffset: baseOffset, lastOffset: lastOffset, byteCount: batch.count)
    }

    /// True if the active segment has data and `segmentMilliseconds` passed since its first append.
    private func isActiveSegmentOld(at now: ContinuousClock.Instant) -> Bool {
        guard let limit = configuration.segmentMilliseconds, let startedAt = activeSegmentStartedAt else { return false }
        return now - startedAt >= .milliseconds(limit)
    }

    /// Seals the active segment (its indexes cut to their entries) and starts a new one at
    /// ``logEndOffset``. The old files and the directory join the next ``SyncWork``.
    private func roll() throws(StorageError) {
        let sealed = active
        try sealed.sealIndexes()
        let segment = try LogSegment.create(directory: directory, baseOffset: logEndOffset, io: io, cache: openFiles)
        segments.append(segment)
        activeSegmentStartedAt = nil
        markUnsynced(sealed.log)
        markUnsynced(sealed.index)
        markUnsynced(sealed.timeIndex)
        directoryIsUnsynced = true
    }

    private var active: LogSegment { segments[segments.count - 1] }

    /// Adds `file`, just written, to the next ``SyncWork``, keeping the descriptor the write went
    /// through open until then unless nothing syncs (`fsync: never`).
    private func markUnsynced(_ file: CachedFile) {
        guard !unsyncedFiles.contains(where: { $0 === file }) else { return }
        unsyncedFiles.append(file)
        if configuration.fsync != .never, let descriptor = file.liveHandle { writtenDescriptors.append(descriptor) }
    }

    // MARK: Read

    /// Locates whole batches for a fetch at `offset`: from the batch holding `offset` (binary
    /// search over segment base offsets, then the segment's index, then a walk of batch headers),
    /// through batches whose baseOffset is below `endOffset` (the visible end; values above
    /// ``logEndOffset`` act as it), up to `maxBytes` but always at least one whole batch. A slice
    /// never spans segments: the next fetch, at ``LogSlice/nextOffset``, continues in the next one.
    ///
    /// Returns nil when `offset >= endOffset`. Throws ``StorageError/Code/offsetOutOfRange`` if
    /// `offset` is below ``logStartOffset`` or above ``logEndOffset``.
    public func read(from offset: Int64, maxBytes: Int, endOffset: Int64) throws(StorageError) -> LogSlice? {
        try checkOpen()
        guard offset >= logStartOffset, offset <= logEndOffset else {
            throw StorageError(.offsetOutOfRange, "offset \(offset) is outside \(logStartOffset)...\(logEndOffset) of \(directory)")
        }
        let endOffset = min(endOffset, logEndOffset)
        var number = max(segments.partitioningIndex { $0.baseOffset > offset } - 1, 0)
        var offset = offset
        while number < segments.count, segments[number].baseOffset < endOffset {
            if let slice = try segments[number].read(from: offset, maxBytes: maxBytes, endOffset: endOffset) { return slice }
            // `offset` lies in a gap after this segment's last batch: continue with the next one.
            number += 1
            if number < segments.count { offset = segments[number].baseOffset }
        }
        return nil
    }

    /// The offset of the last record with `key` (appended, whether synced or not), or nil if the
    /// partition never had one: exact, also for a key whose records retention deleted (the
    /// broker checks conditional appends with it). Cost: a memory lookup for keys of the newest
    /// records, else about one Bloom-filter probe per key-index file and one `pread` per hit.
    public func lastOffset(ofKey key: [UInt8]) throws(StorageError) -> Int64? {
        try checkOpen()
        return try keyIndex.lastOffset(of: IndexedKey(key))
    }

    /// The batches holding records of `key` at offsets from `offset` on, up to `endOffset` (the
    /// visible end), in offset order, at most about `maxBytes` of them (always at least one):
    /// found through the key index, without scanning the log. The batches may hold records of
    /// other keys and, for the first, of `key` below `offset`: readers filter by key and offset.
    public func read(key: [UInt8], from offset: Int64, maxBytes: Int, endOffset: Int64) throws(StorageError) -> KeySlices {
        try checkOpen()
        let indexed = IndexedKey(key)
        let postings = try keyIndex.postings(of: indexed, from: max(offset, logStartOffset), logStartOffset: logStartOffset)
            .filter { $0.baseOffset < endOffset }
        var slices: [LogSlice] = []
        var bytes = 0
        var nextOffset = offset
        for posting in postings {
            let number = segments.partitioningIndex { $0.baseOffset > posting.baseOffset } - 1
            guard number >= 0 else { continue }
            let slice: LogSlice
            if try segments[number].isCleaned() {
                // The cleaner moved the batch: find it by offset (several postings may lead to one).
                slice = try segments[number].slice(ofBatchHolding: posting.baseOffset)
                if let previous = slices.last, previous.firstOffset == slice.firstOffset { continue }
            } else {
                slice = LogSlice(file: try segments[number].log.handle(), position: Int(posting.position), length: Int(posting.length),
                                 firstOffset: posting.baseOffset, nextOffset: posting.lastOffset + 1)
            }
            guard slices.isEmpty || bytes + slice.length <= maxBytes else { break }
            slices.append(slice)
            bytes += slice.length
            nextOffset = slice.nextOffset
        }
        // The key's last visible record: usually its last one; when that is past the visible end
        // (appended, not yet synced), the last one before it.
        var lastOffset = try keyIndex.lastOffset(of: indexed)
        if let last = lastOffset, last >= endOffset {
            lastOffset = try keyIndex.postings(of: indexed, from: logStartOffset, logStartOffset: logStartOffset)
                .last { $0.baseOffset < endOffset }?.lastOffset
        }
        if let last = lastOffset, last < logStartOffset { lastOffset = nil }
        return KeySlices(slices: slices, nextOffset: slices.isEmpty ? max(offset, endOffset) : nextOffset, lastOffset: lastOffset)
    }

    /// The offset of the first record whose timestamp is at or after `timestamp`, or
    /// ``logEndOffset`` if there is none: the first segment whose newest record is that recent,
    /// then a binary search in its time index, then a walk of at most about one index interval
    /// of batch headers (for timestamps that grow with offsets), then the records of one batch.
    public func offset(atOrAfterTimestamp timestamp: Int64) throws(StorageError) -> Int64 {
        try checkOpen()
        for segment in segments {
            if let offset = try segment.firstOffset(atOrAfterTimestamp: timestamp) { return offset }
        }
        return logEndOffset
    }

    /// The headers of every batch in the newest `segmentCount` segments, oldest first: a walk of
    /// batch headers without reading records (the broker rebuilds its idempotent-producer state
    /// from them at open and after a cut).
    public func batchHeaders(inLastSegments segmentCount: Int) throws(StorageError) -> [RecordBatch.Header] {
        try checkOpen()
        var headers: [RecordBatch.Header] = []
        for segment in segments.suffix(max(segmentCount, 0)) { headers += try segment.batchHeaders() }
        return headers
    }

    // MARK: Retention and truncation

    /// Deletes whole sealed segments from the front (the active one is never deleted, nor one
    /// holding offsets at or after `protectedOffset`, such as records not yet synced or visible):
    /// those whose newest record is older than `nowMilliseconds - retentionMilliseconds`, and the
    /// oldest while the log without them still holds at least `retentionBytes`. Their files are
    /// renamed to `*.deleted` at once and unlinked on a background queue. Returns what went, or
    /// nil if nothing did. A read below the new ``logStartOffset`` then throws
    /// ``StorageError/Code/offsetOutOfRange``.
    public func applyRetention(nowMilliseconds: Int64, keepingFrom protectedOffset: Int64 = .max) throws(StorageError) -> RetentionResult? {
        try checkOpen()
        guard configuration.cleanupPolicy.deletes else { return nil }
        let cutoff = configuration.retentionMilliseconds.map { nowMilliseconds - $0 }
        var count = 0
        var bytes = 0
        while count < segments.count - 1 {
            let segment = segments[count]
            guard segment.nextOffset <= protectedOffset else { break }
            let isExpired = cutoff.map { segment.maxTimestamp < $0 } ?? false
            let isOverSize = configuration.retentionBytes.map { Int64(sizeInBytes - bytes - segment.size) >= $0 } ?? false
            guard isExpired || isOverSize else { break }
            bytes += segment.size
            count += 1
        }
        guard count > 0 else { return nil }
        try keyIndex.retire(below: segments[count].baseOffset) { (run) throws(StorageError) in try keyEntries(of: run) }
        var renamed: [String] = []
        for segment in segments[..<count] {
            renamed += try segment.renameForDeletion()
        }
        segments.removeFirst(count)
        logStartOffset = segments[0].baseOffset
        sizeInBytes -= bytes
        directoryIsUnsynced = true
        BackgroundDeleter.unlink(renamed, logger: logger)
        return RetentionResult(deletedSegments: count, deletedBytes: bytes, logStartOffset: logStartOffset)
    }

    // MARK: Compaction

    /// A pass of the log cleaner over the sealed segments (see ``LogCleaning``), or nil when
    /// the policy does not compact or no segment may be cleaned: the newest `keepingNewestSegments`
    /// segments (the active one among them; the broker rebuilds its idempotent-producer state
    /// from their batch headers) and segments holding offsets at or after `protectedOffset`
    /// (records not yet synced) are left alone. Tombstones older than `deleteRetentionMilliseconds`
    /// before `nowMilliseconds` go. Run the pass anywhere, then ``install(_:)`` it here.
    public func cleaningPass(keepingNewestSegments: Int, keepingFrom protectedOffset: Int64 = .max,
                             nowMilliseconds: Int64) throws(StorageError) -> LogCleaning? {
        try checkOpen()
        guard configuration.cleanupPolicy.compacts else { return nil }
        let sources = segments.dropLast(max(keepingNewestSegments, 1)).prefix { $0.nextOffset <= protectedOffset }.map {
            LogCleaning.Source(baseOffset: $0.baseOffset, nextOffset: $0.nextOffset, size: $0.size, log: $0.log)
        }
        guard !sources.isEmpty else { return nil }
        return LogCleaning(directory: directory, sources: sources,
                           tombstoneCutoff: nowMilliseconds - configuration.deleteRetentionMilliseconds,
                           indexIntervalBytes: configuration.indexIntervalBytes, io: io)
    }

    /// Swaps in the cleaned copies of a finished ``LogCleaning`` pass: each replaces its segment
    /// if that is still as the pass read it (retention or a cut may have changed it meanwhile;
    /// then the copy is deleted). Per segment the indexes are renamed first, the `.log` last,
    /// each rename atomic; readers holding slices of the old files keep reading them. Returns
    /// the bytes the log lost. If a rename fails, throws, and the log stays usable, but
    /// ``closeCleanly()`` then refuses so that the next open checks every file.
    public func install(_ cleaned: CleanedSegments) throws(StorageError) -> Int {
        guard !isClosed else {
            cleaned.discard()
            throw StorageError(.closed, "partition log \(directory) is closed")
        }
        var freed = 0
        for (number, copy) in cleaned.copies.enumerated() {
            guard let index = segments.firstIndex(where: { $0.baseOffset == copy.baseOffset }), index < segments.count - 1,
                  segments[index].size == copy.originalSize else {
                copy.remove()
                continue
            }
            let segment = segments[index]
            do throws(StorageError) {
                try Syscall.rename(copy.indexPath, to: segment.path(LogSegment.indexSuffix))
                try Syscall.rename(copy.timeIndexPath, to: segment.path(LogSegment.timeIndexSuffix))
                try Syscall.rename(copy.logPath, to: segment.path(LogSegment.logSuffix))
                directoryIsUnsynced = true
                let (replacement, _) = try LogSegment.open(directory: directory, baseOffset: copy.baseOffset, fullScan: false,
                                                           indexIntervalBytes: configuration.indexIntervalBytes, io: io, cache: openFiles)
                segments[index] = replacement
            } catch {
                needsFullCheck = true
                for rest in cleaned.copies[number...] { rest.remove() }
                throw error
            }
            freed += copy.originalSize - copy.size
            sizeInBytes -= copy.originalSize - copy.size
        }
        return freed
    }

    /// The entries of a key-index run in full; read from the log if its file is damaged.
    private func keyEntries(of run: KeyRun) throws(StorageError) -> [(key: IndexedKey, postings: [KeyPosting])] {
        do throws(StorageError) {
            return try run.allEntries()
        } catch where error.code == .corrupt {
            logger.warning("a key index file is damaged; its keys are read from the log", metadata: ["error": "\(error.message)"])
            var entries: [IndexedKey: [KeyPosting]] = [:]
            try forEachBatch(from: run.fromOffset, to: run.toOffset) { (keys, batch, _) throws(StorageError) in
                for (key, lastDelta) in keys.distinct {
                    var posting = batch
                    posting.lastDelta = lastDelta
                    entries[key, default: []].append(posting)
                }
            }
            return entries.map { ($0.key, $0.value) }
        }
    }

    /// Cuts the log back to `offset`, a batch boundary in ``logStartOffset``...``logEndOffset``:
    /// every batch from there on is gone, from the files too (segments that start at or after it
    /// are deleted, except the first, which is emptied). The broker uses it to drop appends whose
    /// sync failed, whose bytes may never reach the disk; the next append gets `offset`.
    /// Throws ``StorageError/Code/invalidArgument`` for an offset outside the log or inside a batch.
    public func truncate(to offset: Int64) throws(StorageError) {
        try checkOpen()
        guard offset >= logStartOffset, offset <= logEndOffset else {
            throw StorageError(.invalidArgument, "cannot truncate \(directory) to offset \(offset), outside \(logStartOffset)...\(logEndOffset)")
        }
        guard offset < logEndOffset else { return }
        // Find the cut before changing anything, so a bad offset leaves the log as it was.
        let keep = max(segments.partitioningIndex { $0.baseOffset >= offset }, 1)
        let last = segments[keep - 1]
        let position = try last.position(ofBatchStartingAt: offset)
        var removed: [String] = []
        for segment in segments[keep...] {
            removed += try segment.renameForDeletion()
            sizeInBytes -= segment.size
        }
        segments.removeSubrange(keep...)
        sizeInBytes -= last.size
        try last.truncate(toPosition: position, indexIntervalBytes: configuration.indexIntervalBytes)
        sizeInBytes += last.size
        logEndOffset = last.nextOffset
        if last.size == 0 { activeSegmentStartedAt = nil }
        if let reindexFrom = try keyIndex.truncate(to: offset, logStartOffset: logStartOffset) {
            try indexKeys(from: reindexFrom, to: offset)
        }
        (unsyncedFiles, writtenDescriptors) = ([], [])
        for file in [last.log, last.index, last.timeIndex] { markUnsynced(file) }
        directoryIsUnsynced = directoryIsUnsynced || !removed.isEmpty
        BackgroundDeleter.unlink(removed, logger: logger)
    }

    // MARK: Sync

    /// The files written since the last call (the active `.log`; after a roll also the sealed
    /// segment's `.log` and `.index`, and the partition directory, which holds the new files'
    /// names) and the offset they cover, ``logEndOffset`` now. Nil if nothing changed. Running the
    /// work makes every append made before this call durable.
    public func takeSyncWork() -> SyncWork? {
        let keyIndexFiles = keyIndex.takeUnsyncedFiles()
        for file in keyIndexFiles { markUnsynced(file) }
        if !keyIndexFiles.isEmpty { directoryIsUnsynced = true }
        guard !unsyncedFiles.isEmpty || directoryIsUnsynced else { return nil }
        let files = unsyncedFiles + (directoryIsUnsynced ? [directoryFile] : [])
        defer { (unsyncedFiles, writtenDescriptors, directoryIsUnsynced) = ([], [], false) }
        return SyncWork(endOffset: logEndOffset, files: files, writtenDescriptors: writtenDescriptors)
    }

    // MARK: Close

    /// Cuts the active segment's index files to exactly their entries (entries are written as
    /// they are made; sealed segments were cut when they rolled) and releases the files; slices
    /// and sync work handed out keep theirs open until they are dropped. Does not sync: run the
    /// last ``takeSyncWork()`` first for durability. Idempotent; later calls other than
    /// ``close()`` throw ``StorageError/Code/closed``.
    public func close() {
        guard !isClosed else { return }
        do throws(StorageError) {
            try segments.last?.sealIndexes()
        } catch {
            logger.warning("could not trim an index; recovery will rebuild it", metadata: ["error": "\(error)"])
        }
        release()
    }

    /// Closes the log so that the next open may use ``OpenMode/afterCleanShutdown``: cuts the
    /// active segment's indexes to their entries and syncs them (the `.log` files must have been
    /// synced through ``takeSyncWork()`` before). Throws, leaving the log closed, if a cut or sync
    /// fails; then the next open must be ``OpenMode/afterCrash``.
    public func closeCleanly() throws(StorageError) {
        guard !isClosed else { return }
        defer { release() }
        guard !needsFullCheck else {
            throw StorageError(.io, "a cleaned segment of \(directory) was swapped in only in part; the next open checks every file")
        }
        try active.sealIndexes()
        try active.index.sync()
        try active.timeIndex.sync()
        try keyIndex.writeActiveRun(endingAt: logEndOffset, sync: true)
    }

    private func release() {
        isClosed = true
        segments = []
        unsyncedFiles = []
        writtenDescriptors = []
        directoryIsUnsynced = false
    }

    private func checkOpen() throws(StorageError) {
        guard !isClosed else { throw StorageError(.closed, "partition log \(directory) is closed") }
    }
}
