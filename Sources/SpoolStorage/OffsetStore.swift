import Glibc
import Logging
import SpoolWire

/// The consumer groups' committed offsets, `(group, topic, partition) → (offset, metadata)`,
/// kept in memory and persisted in one directory (the broker's `<data>/@offsets`):
///
/// ```
/// <20-digit generation>.log        commit entries, appended; one entry per commit request
/// offsets.snapshot                 the whole map, holding every entry of the logs below its generation
/// <file>.<byte>.corrupt            bytes recovery cut, kept for inspection
/// ```
/// (Byte layout: see `OffsetStoreFormat`.)
///
/// Invariants: the map in memory is the snapshot with every log whose generation is at least the
/// snapshot's replayed on top, in generation order, entries in file order, a later commit of a
/// partition replacing an earlier one (also a lower offset: consumers may rewind on purpose).
/// Commits go to the last log (the active one). A commit request is one entry with one CRC, so a
/// crash keeps it whole or drops it whole. The snapshot and each new log are written atomically
/// (temporary file, fdatasync, rename, directory fsync), so a crash at any point of a compaction
/// leaves files that replay to exactly the committed map.
///
/// Not thread-safe: owned by the broker's network loop thread. The ``SyncWork`` it hands out is
/// `Sendable` and may run on a ``GroupCommitFlusher``'s thread.
public final class OffsetStore {
    /// Longest group name, in bytes of UTF-8 (as a topic name).
    public static let maxGroupBytes = TopicName.maxLength
    /// Longest metadata of one committed offset, in bytes of UTF-8.
    public static let maxMetadataBytes = 4096
    /// Default of `compactionBytes`.
    public static let defaultCompactionBytes = 4 << 20

    private typealias Format = OffsetStoreFormat

    /// The store's directory.
    public let directory: String
    /// Log bytes (over all logs the snapshot does not cover) past which ``compactIfNeeded()`` compacts.
    public var compactionBytes: Int
    /// What recovery cut or set aside while this store opened, each also logged at warning (or at
    /// error for a corrupt snapshot).
    public private(set) var recoveryReports: [RecoveryReport] = []
    /// Commits written since this store opened; the ``SyncWork/endOffset`` of each commit's work.
    public private(set) var commitSequence: Int64 = 0

    private let logger: Logger
    private let io: FileIO
    private var map: Format.Map = [:]
    /// The log taking commits; nil once closed.
    private var activeLog: FileHandle?
    private var activeGeneration: Int64 = 0
    /// Bytes of valid entries and header in the active log; the next entry goes there.
    private var activeSize = 0
    /// Entry bytes of the older logs the snapshot does not cover yet.
    private var olderLogBytes = 0

    /// Entry bytes the next snapshot would make redundant.
    var logBytes: Int { olderLogBytes + activeSize - Format.logHeaderSize }

    /// Opens the store in `directory` (creating it, and an empty log, if missing) and recovers it:
    /// removes temporary files of an interrupted write, loads the snapshot, deletes logs the
    /// snapshot covers, replays the others. Each log is cut after its last whole, valid entry, so
    /// a torn, garbage or zero-filled tail or a corrupt entry ends there; a file with a bad header
    /// or a corrupt snapshot is renamed aside. Cut bytes are saved to `<file>.<byte>.corrupt`
    /// unless all zero; each cut is logged and listed in ``recoveryReports``. Never traps on a
    /// damaged file; throws when a file cannot be read or written, or holds a format version newer
    /// than this build reads (``StorageError/Code/corrupt``).
    public convenience init(directory: String, logger: Logger, compactionBytes: Int = OffsetStore.defaultCompactionBytes) throws(StorageError) {
        try self.init(directory: directory, logger: logger, io: .system, compactionBytes: compactionBytes)
    }

    /// Opens the store with every write, truncation and sync going through `io` (for fault injection).
    @_spi(Testing) public init(directory: String, logger: Logger, io: FileIO,
                               compactionBytes: Int = OffsetStore.defaultCompactionBytes) throws(StorageError) {
        self.directory = directory
        self.logger = logger
        self.io = io
        self.compactionBytes = compactionBytes
        if !Syscall.isDirectory(directory) {
            try Syscall.makeDirectories(directory)
            if let slash = directory.lastIndex(of: "/"), slash != directory.startIndex {
                try io.syncDirectory(String(directory[..<slash]))
            }
        }
        let names = try Syscall.listDirectory(directory)
        for name in names where name.hasSuffix(Format.temporarySuffix) {
            try Syscall.unlinkIfPresent("\(directory)/\(name)")
        }
        var snapshotGeneration = try loadSnapshot()
        var generationRepaired = false
        let logGenerations = names.compactMap(Format.generation(logFileName:)).sorted()
        // A compaction creates log G before it writes snapshot G, so some log is always at or above
        // the snapshot's generation. If none is, the generation (outside the snapshot's checksum)
        // is damaged: trust the newest log rather than delete every log below a bogus number.
        if let newest = logGenerations.last, newest < snapshotGeneration {
            let path = "\(directory)/\(Format.snapshotFileName)"
            recoveryReports.append(RecoveryReport(
                path: path, validBytes: 0, truncatedBytes: 0, firstLostOffset: nil,
                reason: "snapshot generation \(snapshotGeneration) is above every log (the newest is \(newest)); damaged, using \(newest) and rewriting the snapshot",
                indexRebuilt: false))
            snapshotGeneration = newest
            generationRepaired = true
        }
        var active: (log: FileHandle, generation: Int64, size: Int)?
        for generation in logGenerations {
            let path = "\(directory)/\(Format.logFileName(generation: generation))"
            guard generation >= snapshotGeneration else {
                try Syscall.unlinkIfPresent(path)  // a compaction stopped before it could delete it
                continue
            }
            guard let replayed = try replay(path) else { continue }
            if let previous = active { olderLogBytes += previous.size - Format.logHeaderSize }
            active = (replayed.log, generation, replayed.size)
        }
        if active == nil {
            active = (try createLog(generation: snapshotGeneration), snapshotGeneration, Format.logHeaderSize)
        }
        (activeLog, activeGeneration, activeSize) = active!
        if generationRepaired { try compact() }
        for report in recoveryReports {
            // A lost snapshot loses offsets; a cut log tail only commits that were never durable.
            let level: Logger.Level = report.path.hasSuffix(Format.snapshotFileName) ? .error : .warning
            logger.log(level: level, "recovered a damaged offset store file", metadata: ["report": "\(report)"])
        }
    }

    /// Loads `offsets.snapshot` into the map and returns its generation (0 without a snapshot).
    private func loadSnapshot() throws(StorageError) -> Int64 {
        let path = "\(directory)/\(Format.snapshotFileName)"
        guard let bytes = try Syscall.readFile(path) else { return 0 }
        switch bytes.withUnsafeBytes({ Format.decodeSnapshot($0) }) {
        case .success(let (generation, map)):
            self.map = map
            return generation
        case .failure(.newerVersion(let version)):
            throw StorageError(.corrupt, "\(path) has format version \(version); this build reads \(Format.version)")
        case .failure(.invalid(let reason)):
            recoveryReports.append(RecoveryReport(path: path, validBytes: 0, truncatedBytes: bytes.count, firstLostOffset: nil,
                                                  reason: "corrupt snapshot, its offsets are lost: \(reason)", indexRebuilt: false,
                                                  setAsidePath: try setAside(path)))
            return 0
        }
    }

    /// Replays one log into the map, cutting it after its last valid entry. Returns the open log
    /// and its valid size, or nil if its header was bad and it was renamed aside.
    private func replay(_ path: String) throws(StorageError) -> (log: FileHandle, size: Int)? {
        let log = try FileHandle(opening: path, flags: O_RDWR, io: io)
        var bytes = [UInt8](repeating: 0, count: try log.size())
        let count = try withMutableBytes(of: &bytes) { (buffer) throws(StorageError) in try log.read(into: buffer, at: 0) }
        bytes.removeSubrange(count...)
        switch bytes.withUnsafeBytes({ Format.checkHeader($0, magic: Format.logMagic, size: Format.logHeaderSize) }) {
        case nil:
            break
        case .newerVersion(let version):
            throw StorageError(.corrupt, "\(path) has format version \(version); this build reads \(Format.version)")
        case .invalid(let reason):
            recoveryReports.append(RecoveryReport(path: path, validBytes: 0, truncatedBytes: bytes.count, firstLostOffset: nil,
                                                  reason: reason, indexRebuilt: false, setAsidePath: try setAside(path)))
            return nil
        }
        let scan = bytes.withUnsafeBytes { Format.scanLog($0) }
        for commit in scan.commits { Format.apply(group: commit.group, offsets: commit.offsets, to: &map) }
        if let problem = scan.problem {
            let cut = bytes[scan.validBytes...]
            var setAsidePath: String?
            var reason = problem
            if cut.contains(where: { $0 != 0 }) {
                do throws(StorageError) {
                    setAsidePath = try saveAside(cut, of: path, cutAt: scan.validBytes)
                } catch where error.isOutOfSpace {
                    // A torn commit was never acknowledged: cutting it without a copy loses nothing promised.
                    reason += "; " + error.cutWithoutCopy(of: cut.count)
                }
            } else {
                reason = "zero-filled tail at byte \(scan.validBytes)"
            }
            try log.truncate(to: scan.validBytes)
            try log.sync()
            recoveryReports.append(RecoveryReport(
                path: path, validBytes: scan.validBytes, truncatedBytes: cut.count, firstLostOffset: nil,
                reason: reason, indexRebuilt: false, setAsidePath: setAsidePath))
        }
        return (log, scan.validBytes)
    }

    /// The first of `<path><infix>.corrupt`, `<path><infix>.1.corrupt`, … that does not exist.
    private static func unusedSetAsidePath(_ path: String, infix: String = "") -> String {
        var attempt = 0
        while true {
            let candidate = path + infix + (attempt == 0 ? "" : ".\(attempt)") + Format.setAsideSuffix
            if access(candidate, F_OK) != 0 { return candidate }
            attempt += 1
        }
    }

    /// Renames a whole damaged file aside (durably); returns its new path.
    private func setAside(_ path: String) throws(StorageError) -> String {
        let newPath = Self.unusedSetAsidePath(path)
        try Syscall.rename(path, to: newPath)
        try io.syncDirectory(directory)
        return newPath
    }

    /// Copies the bytes cut at `start` of `path` to `<path>.<start>.corrupt` (durably); returns its
    /// path. If it fails, the partial copy is removed.
    private func saveAside(_ bytes: ArraySlice<UInt8>, of path: String, cutAt start: Int) throws(StorageError) -> String {
        let copy = try FileHandle(opening: Self.unusedSetAsidePath(path, infix: ".\(start)"), flags: O_WRONLY | O_CREAT | O_EXCL, io: io)
        do throws(StorageError) {
            try withBytes(of: Array(bytes)) { (buffer) throws(StorageError) in try copy.write(at: 0, buffer) }
            try copy.sync()
            try io.syncDirectory(directory)
            return copy.path
        } catch {
            _ = try? Syscall.unlinkIfPresent(copy.path)
            throw error
        }
    }

    /// Creates an empty log of `generation` atomically and opens it.
    private func createLog(generation: Int64) throws(StorageError) -> FileHandle {
        let name = Format.logFileName(generation: generation)
        try io.writeAtomically(Format.logHeader, directory: directory, name: name)
        return try FileHandle(opening: "\(directory)/\(name)", flags: O_RDWR, io: io)
    }

    deinit { close() }

    // MARK: Reading

    /// The offset `group` last committed for `partition`, or nil if it never did.
    public func committed(group: String, partition: TopicPartition) -> CommittedOffset? {
        map[group]?[partition]
    }

    /// Every offset `group` committed, the last one per partition, sorted by partition.
    public func committed(group: String) -> [CommittedOffset] {
        (map[group] ?? [:]).values.sorted { $0.partition < $1.partition }
    }

    /// The groups that committed at least one offset, sorted.
    public var groups: [String] { map.keys.sorted() }

    // MARK: Writing

    /// Writes one commit of `offsets` by `group` as one entry at the end of the active log (into
    /// the page cache) and stores each offset in memory, replacing the partition's previous one
    /// whatever its value; later entries of `offsets` win over earlier ones for the same partition.
    /// Returns the work that makes it durable: once a ``GroupCommitFlusher`` ran it, this commit
    /// and every earlier one survive a crash, whole. Its ``SyncWork/endOffset`` is
    /// ``commitSequence`` after this commit, so works from later commits have larger ones. An
    /// empty `offsets` writes nothing and returns work covering the commits made so far.
    ///
    /// If the write fails, the log is cut back to its previous size, nothing changes in memory,
    /// ``StorageError/Code/io`` is thrown, and the next commit works once the cause is gone.
    /// Throws ``StorageError/Code/invalidArgument`` if the group name is empty or longer than
    /// ``maxGroupBytes``, a topic name is empty or longer than `TopicName.maxLength`, a partition
    /// is negative or a metadata is longer than ``maxMetadataBytes`` (nothing is written then),
    /// and ``StorageError/Code/closed`` after ``close()``.
    public func commit(group: String, offsets: [CommittedOffset]) throws(StorageError) -> SyncWork {
        guard let log = activeLog else { throw StorageError(.closed, "offset store \(directory) is closed") }
        try Self.validate(group: group, offsets: offsets)
        guard !offsets.isEmpty else { return SyncWork(endOffset: commitSequence, files: [log]) }
        let entry = Format.logEntry(group: group, offsets: offsets)
        let position = activeSize
        do throws(StorageError) {
            try withBytes(of: entry) { (buffer) throws(StorageError) in try log.write(at: position, buffer) }
        } catch {
            // If the cut fails too, the leftover lies past `activeSize`: overwritten by the next
            // commit, cut by recovery.
            try? log.truncate(to: position)
            throw error
        }
        activeSize += entry.count
        Format.apply(group: group, offsets: offsets, to: &map)
        commitSequence += 1
        return SyncWork(endOffset: commitSequence, files: [log])
    }

    private static func validate(group: String, offsets: [CommittedOffset]) throws(StorageError) {
        guard (1...maxGroupBytes).contains(group.utf8.count) else {
            throw StorageError(.invalidArgument, "group name is \(group.utf8.count) bytes; it must be 1 to \(maxGroupBytes)")
        }
        for offset in offsets {
            let topic = offset.partition.topic
            guard (1...TopicName.maxLength).contains(topic.utf8.count) else {
                throw StorageError(.invalidArgument, "group \(group): topic name is \(topic.utf8.count) bytes; it must be 1 to \(TopicName.maxLength)")
            }
            guard offset.partition.partition >= 0 else {
                throw StorageError(.invalidArgument, "group \(group): partition \(offset.partition) is negative")
            }
            guard offset.metadata.utf8.count <= maxMetadataBytes else {
                throw StorageError(.invalidArgument,
                                   "group \(group): metadata of \(offset.partition) is \(offset.metadata.utf8.count) bytes; the limit is \(maxMetadataBytes)")
            }
        }
    }

    // MARK: Compaction

    /// Runs ``compact()`` if the logs the snapshot does not cover hold more than
    /// ``compactionBytes`` of entries. Meant to be called after commits, on the same thread.
    public func compactIfNeeded() throws(StorageError) {
        if logBytes > compactionBytes { try compact() }
    }

    /// Replaces the logs by a snapshot of the map, synchronously: (1) unless the active log is
    /// empty, creates the next log atomically and sends later commits to it; (2) writes the whole
    /// map to `offsets.snapshot` atomically (temporary file, fdatasync, rename, directory fsync),
    /// covering every older log; (3) deletes the older logs. After a crash between any two steps
    /// the next open yields exactly the committed map. If a step fails, it throws and the store
    /// stays consistent and usable (commits made after the failure survive a crash too); a
    /// later call retries. ``SyncWork`` handed out before stays valid: it syncs the old log's
    /// still-open file, which is harmless, and the snapshot already holds its commits.
    public func compact() throws(StorageError) {
        guard activeLog != nil else { throw StorageError(.closed, "offset store \(directory) is closed") }
        if activeSize > Format.logHeaderSize {
            let generation = activeGeneration + 1
            let log = try createLog(generation: generation)
            olderLogBytes += activeSize - Format.logHeaderSize
            (activeLog, activeGeneration, activeSize) = (log, generation, Format.logHeaderSize)
        }
        try io.writeAtomically(Format.snapshot(of: map, generation: activeGeneration), directory: directory, name: Format.snapshotFileName)
        olderLogBytes = 0
        do throws(StorageError) {
            for name in try Syscall.listDirectory(directory) {
                guard let generation = Format.generation(logFileName: name), generation < activeGeneration else { continue }
                try Syscall.unlinkIfPresent("\(directory)/\(name)")
            }
        } catch {
            logger.warning("could not delete an offset log the snapshot covers; the next open will", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Close

    /// Releases the files; the map stays readable, ``commit(group:offsets:)`` and ``compact()``
    /// throw ``StorageError/Code/closed``. Does not sync: run the last commit's ``SyncWork``
    /// first for durability. Sync work handed out keeps its file open until dropped. Idempotent.
    public func close() {
        activeLog = nil
    }
}
