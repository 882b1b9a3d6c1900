import Glibc
import Logging
import SpoolWire

/// One partition's log: an ordered list of segments, `<20-digit baseOffset>.log` plus `.index`,
/// in one directory. Batches are appended to the last (active) segment and get dense offsets.
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

    private let logger: Logger
    private let io: FileIO
    /// Sorted by baseOffset; never empty while open.
    private var segments: [LogSegment]
    private var directoryHandle: FileHandle?
    /// Files written since the last ``takeSyncWork()``, in order, each once.
    private var unsyncedFiles: [FileHandle] = []
    /// True when a file was created in the directory since the last ``takeSyncWork()``.
    private var directoryIsUnsynced = false
    private var isClosed = false

    /// Opens the log in `directory` (creating the directory and a first segment if missing) and
    /// recovers it: every segment's index is checked and rebuilt if missing, malformed, or
    /// pointing past the file; the last segment is scanned batch by batch (header, checksum,
    /// records, dense offsets) and cut after the last valid batch, so a torn, garbage or
    /// zero-filled tail disappears; a `.log` whose first batch does not carry the offset of its
    /// name, and gaps between segments, are reported. Bytes cut are saved aside (see
    /// ``RecoveryReport/setAsidePath``). Never traps on a corrupt file; throws only when a file
    /// cannot be read or written.
    public convenience init(directory: String, configuration: LogConfiguration, logger: Logger) throws(StorageError) {
        try self.init(directory: directory, configuration: configuration, logger: logger, io: .system)
    }

    /// Opens the log with every write, truncation and sync going through `io` (for fault injection).
    @_spi(Testing) public init(directory: String, configuration: LogConfiguration, logger: Logger, io: FileIO) throws(StorageError) {
        self.directory = directory
        self.configuration = configuration
        self.logger = logger
        self.io = io
        try Syscall.makeDirectories(directory)
        let directoryHandle = try FileHandle(opening: directory, flags: O_RDONLY | O_DIRECTORY, isDirectory: true, io: io)
        self.directoryHandle = directoryHandle
        let baseOffsets = try Syscall.listDirectory(directory).compactMap(LogSegment.baseOffset(logFileName:)).sorted()
        var segments: [LogSegment] = []
        var reports: [RecoveryReport] = []
        for (number, baseOffset) in baseOffsets.enumerated() {
            let (segment, report) = try LogSegment.open(
                directory: directory, baseOffset: baseOffset, isActive: number == baseOffsets.count - 1,
                indexIntervalBytes: configuration.indexIntervalBytes, io: io)
            if let previous = segments.last, previous.nextOffset != segment.baseOffset {
                reports.append(Self.gapReport(between: previous, and: segment))
            }
            if let report { reports.append(report) }
            segments.append(segment)
        }
        if segments.isEmpty {
            segments.append(try LogSegment.create(directory: directory, baseOffset: 0, io: io))
            directoryIsUnsynced = true
        }
        self.segments = segments
        recoveryReports = reports
        logStartOffset = segments[0].baseOffset
        logEndOffset = segments[segments.count - 1].nextOffset
        sizeInBytes = segments.reduce(0) { $0 + $1.size }
        for report in reports {
            logger.warning("recovered a damaged segment", metadata: ["report": "\(report)"])
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
    /// new segment first when the active one is non-empty and would pass `segmentBytes`.
    ///
    /// If a write fails (ENOSPC, EIO, a short write), the segment is cut back to its previous size,
    /// the log is unchanged, ``StorageError/Code/io`` is thrown, and the next append works once
    /// the cause is gone. Throws ``StorageError/Code/invalidArgument`` if `batch` is not one whole
    /// batch by its header, and ``StorageError/Code/closed`` after ``close()``.
    public func append(_ batch: UnsafeRawBufferPointer) throws(StorageError) -> AppendResult {
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
        if active.isFull(adding: batch.count, lastOffset: lastOffset, maximumBytes: configuration.segmentBytes) {
            try roll()
        }
        try active.append(batch, header: header, indexIntervalBytes: configuration.indexIntervalBytes)
        logEndOffset = lastOffset + 1
        sizeInBytes += batch.count
        markUnsynced(active.log)
        return AppendResult(baseOffset: baseOffset, lastOffset: lastOffset, byteCount: batch.count)
    }

    /// Seals the active segment (its index cut to its entries) and starts a new one at
    /// ``logEndOffset``. The old files and the directory join the next ``SyncWork``.
    private func roll() throws(StorageError) {
        let sealed = active
        try sealed.sealIndex()
        let segment = try LogSegment.create(directory: directory, baseOffset: logEndOffset, io: io)
        segments.append(segment)
        markUnsynced(sealed.log)
        markUnsynced(sealed.index)
        directoryIsUnsynced = true
    }

    private var active: LogSegment { segments[segments.count - 1] }

    private func markUnsynced(_ file: FileHandle) {
        if !unsyncedFiles.contains(where: { $0 === file }) { unsyncedFiles.append(file) }
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

    /// The offset of the first record whose timestamp is at or after `timestamp`, or
    /// ``logEndOffset`` if there is none. Walks batch headers from the oldest segment on, then the
    /// records of the first batch whose maxTimestamp is at or after `timestamp`.
    public func offset(atOrAfterTimestamp timestamp: Int64) throws(StorageError) -> Int64 {
        try checkOpen()
        for segment in segments {
            if let offset = try segment.firstOffset(atOrAfterTimestamp: timestamp) { return offset }
        }
        return logEndOffset
    }

    // MARK: Sync

    /// The files written since the last call (the active `.log`; after a roll also the sealed
    /// segment's `.log` and `.index`, and the partition directory, which holds the new files'
    /// names) and the offset they cover, ``logEndOffset`` now. Nil if nothing changed. Running the
    /// work makes every append made before this call durable.
    public func takeSyncWork() -> SyncWork? {
        guard !unsyncedFiles.isEmpty || directoryIsUnsynced, let directoryHandle else { return nil }
        let files = unsyncedFiles + (directoryIsUnsynced ? [directoryHandle] : [])
        unsyncedFiles = []
        directoryIsUnsynced = false
        return SyncWork(endOffset: logEndOffset, files: files)
    }

    // MARK: Close

    /// Cuts each index file to exactly its entries (entries are written as they are made) and
    /// releases the files; slices and sync work handed out keep theirs open until they are
    /// dropped. Does not sync: run the last ``takeSyncWork()`` first for durability. Idempotent;
    /// later calls other than ``close()`` throw ``StorageError/Code/closed``.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        for segment in segments {
            do throws(StorageError) {
                try segment.sealIndex()
            } catch {
                logger.warning("could not trim an index; recovery will rebuild it", metadata: ["error": "\(error)"])
            }
        }
        segments = []
        unsyncedFiles = []
        directoryIsUnsynced = false
        directoryHandle = nil
    }

    private func checkOpen() throws(StorageError) {
        guard !isClosed else { throw StorageError(.closed, "partition log \(directory) is closed") }
    }
}
