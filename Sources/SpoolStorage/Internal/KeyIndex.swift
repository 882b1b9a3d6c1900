import Glibc
import Logging
import SpoolWire

/// The key index of one partition: for every key, the batches holding its records, so that the
/// broker answers "what is the last offset of key K" exactly (conditional appends) and reads one
/// key's records without scanning the partition.
///
/// It has three parts, newest last:
/// - the **retired table** (`retired.keys`): the last offset of every key whose records retention
///   deleted, so a key never looks new again; rewritten (synced) before segments are deleted;
/// - **runs** (`<20-digit fromOffset>.keys`): immutable files that tile the log's offsets
///   `runs[0].fromOffset..<activeStart` without gaps, each holding every key with records in its
///   range and their postings;
/// - the **active run**: the keys of `activeStart..<logEndOffset`, in memory, written as a run
///   once it holds ``LogConfiguration/keyIndexKeysInMemory`` keys (or 16 postings per key on
///   average), and at a clean close.
///
/// Memory: the active run (about 100 bytes per key plus 20 per posting, bounded as above) and per
/// run file its Bloom filter and sparse index (about 1.8 bytes per key). A lookup checks the
/// active run, then the runs newest first (a Bloom filter skips most without a read; a hit costs
/// one `pread` of the entries between two sparse entries), then the retired table.
///
/// Not thread-safe: owned by its ``PartitionLog``.
final class KeyIndex {
    let directory: String
    private(set) var runs: [KeyRun] = []
    private(set) var retired: KeyRun?
    /// First offset of the active run; every offset below it (from the first run's) is in a file.
    private(set) var activeStart: Int64
    private var active: [IndexedKey: [KeyPosting]] = [:]
    private var activePostings = 0
    /// Run files written since the last ``takeUnsyncedFiles()``.
    private var unsynced: [CachedFile] = []
    private let io: FileIO
    private let cache: OpenFileCache
    private let logger: Logger

    /// Opens the index files of `directory`, checking each (size, header, checksums); a damaged
    /// run file is removed (it is rebuilt from the log), a damaged retired table is set aside and
    /// the damage logged. Call ``resume(logStartOffset:logEndOffset:trustedEnd:)`` next, then
    /// index every batch from ``activeStart`` on.
    init(directory: String, io: FileIO, cache: OpenFileCache, logger: Logger) throws(StorageError) {
        self.directory = directory
        self.io = io
        self.cache = cache
        self.logger = logger
        activeStart = 0
        let names = try Syscall.listDirectory(directory)
        for name in names where name.hasSuffix(KeyRun.suffix + FileIO.temporarySuffix) {
            _ = try Syscall.unlinkIfPresent("\(directory)/\(name)")
        }
        if names.contains(KeyRun.retiredName) {
            let path = "\(directory)/\(KeyRun.retiredName)"
            do throws(StorageError) {
                retired = try KeyRun.open(path: path, io: io, cache: cache)
            } catch where error.code == .corrupt {
                let aside = "\(path).damaged"
                try Syscall.rename(path, to: aside)
                logger.error("the key index's retired table is damaged and was set aside: conditional appends may take a deleted key for a new one",
                             metadata: ["path": "\(aside)", "error": "\(error.message)"])
            }
        }
        var found: [KeyRun] = []
        for name in names {
            guard let named = KeyRun.fromOffset(fileName: name) else { continue }
            let path = "\(directory)/\(name)"
            do throws(StorageError) {
                let run = try KeyRun.open(path: path, io: io, cache: cache)
                guard run.fromOffset == named else {
                    throw StorageError(.corrupt, "key index \(path) starts at offset \(run.fromOffset), not at the one its name says")
                }
                found.append(run)
            } catch where error.code == .corrupt {
                logger.warning("a key index file is damaged; it is rebuilt from the log", metadata: ["error": "\(error.message)"])
                _ = try Syscall.unlinkIfPresent(path)
            }
        }
        runs = found.sorted { $0.fromOffset < $1.fromOffset }
    }

    /// Keeps the runs that tile the offsets from the first one on, starting at or before
    /// `logStartOffset` and ending at or before `trustedEnd` (the log's end after a clean close;
    /// after a crash, the first offset of the first segment recovery repaired, since a run may
    /// point into what it cut); removes the others. The active run then starts where the kept
    /// ones end (at `logStartOffset` if none is kept): the caller indexes every batch from
    /// ``activeStart`` to the log's end.
    func resume(logStartOffset: Int64, trustedEnd: Int64) throws(StorageError) {
        var kept = 0
        if let first = runs.first, first.fromOffset <= logStartOffset {
            kept = 1
            while kept < runs.count, runs[kept].fromOffset == runs[kept - 1].toOffset { kept += 1 }
            while kept > 0, runs[kept - 1].toOffset > trustedEnd { kept -= 1 }
        }
        if kept < runs.count {
            logger.warning("key index files do not cover the log without gaps; the rest is rebuilt from the log", metadata: [
                "directory": "\(directory)", "kept": "\(kept)", "removed": "\(runs.count - kept)",
            ])
            try removeRuns(kept...)
        }
        activeStart = runs.last?.toOffset ?? logStartOffset
        active = [:]
        activePostings = 0
    }

    // MARK: Indexing

    /// Adds the keys of a batch appended at `baseOffset` (at or after ``activeStart``), stored at
    /// byte `position` of its segment.
    func add(_ keys: BatchKeys, baseOffset: Int64, position: Int, length: Int) {
        let keys = keys.distinct
        for (key, lastDelta) in keys {
            active[key, default: []].append(KeyPosting(baseOffset: baseOffset, lastDelta: lastDelta,
                                                       position: UInt32(position), length: UInt32(length)))
        }
        activePostings += keys.count
    }

    /// True when the active run holds `maxKeys` keys (or 16 postings per key on average) and should be written to a file.
    func isActiveRunFull(maxKeys: Int) -> Bool {
        active.count >= maxKeys || activePostings >= maxKeys * 16
    }

    /// Writes the active run, covering ``activeStart``..<`endOffset`, to a file and empties it.
    /// With `sync` the file is synced now (a clean close); otherwise it joins the next
    /// ``takeUnsyncedFiles()``. On failure the active run is unchanged (the caller tries again later).
    func writeActiveRun(endingAt endOffset: Int64, sync: Bool = false) throws(StorageError) {
        guard endOffset > activeStart else { return }
        let run = try KeyRun.write(active.map { ($0.key, $0.value) }, fromOffset: activeStart, toOffset: endOffset,
                                   directory: directory, name: KeyRun.fileName(fromOffset: activeStart), sync: sync, io: io, cache: cache)
        runs.append(run)
        if !sync { unsynced.append(run.file) }
        activeStart = endOffset
        active = [:]
        activePostings = 0
    }

    /// What the index holds and costs (the active run's memory estimated at 100 bytes per key
    /// and 20 per posting).
    var statistics: KeyIndexStatistics {
        let files = runs + [retired].compactMap { $0 }
        return KeyIndexStatistics(files: files.count, fileBytes: files.reduce(0) { $0 + $1.fileBytes },
                                  keysInMemory: active.count,
                                  memoryBytes: files.reduce(0) { $0 + $1.memoryBytes } + active.count * 100 + activePostings * KeyPosting.size)
    }

    /// The run files written since the last call.
    func takeUnsyncedFiles() -> [CachedFile] {
        defer { unsynced = [] }
        return unsynced
    }

    // MARK: Lookups

    /// The offset of the last record of `key`, appended or retired; nil if it never had one.
    func lastOffset(of key: IndexedKey) throws(StorageError) -> Int64? {
        if let postings = active[key] { return postings[postings.count - 1].lastOffset }
        for run in runs.reversed() {
            if let postings = try run.postings(of: key) { return postings[postings.count - 1].lastOffset }
        }
        return try retired?.postings(of: key).map { $0[$0.count - 1].lastOffset }
    }

    /// The batches holding records of `key` at or after `offset` and starting at or after
    /// `logStartOffset`, in offset order.
    func postings(of key: IndexedKey, from offset: Int64, logStartOffset: Int64) throws(StorageError) -> [KeyPosting] {
        var found: [KeyPosting] = []
        let first = runs.partitioningIndex { $0.toOffset > offset }
        for run in runs[first...] {
            found += try run.postings(of: key) ?? []
        }
        found += active[key] ?? []
        return found.filter { $0.lastOffset >= offset && $0.baseOffset >= logStartOffset }
    }

    // MARK: Truncation and retention

    /// Forgets every batch at or after `offset` (a batch boundary). Returns the offset from which
    /// the caller must index the log's batches again up to `offset` (runs past it were removed and
    /// the active run now starts there), or nil if nothing needs indexing again.
    func truncate(to offset: Int64, logStartOffset: Int64) throws(StorageError) -> Int64? {
        if offset >= activeStart {
            for (key, postings) in active {
                let kept = postings.filter { $0.baseOffset < offset }
                activePostings -= postings.count - kept.count
                active[key] = kept.isEmpty ? nil : kept
            }
            return nil
        }
        let keep = runs.partitioningIndex { $0.toOffset > offset }
        try removeRuns(keep...)
        activeStart = runs.last?.toOffset ?? logStartOffset
        active = [:]
        activePostings = 0
        return activeStart < offset ? activeStart : nil
    }

    /// Before retention deletes the segments below `logStartOffset`: merges the last offset of
    /// every key with records below it (from the runs that end there, and from the run and active
    /// run reaching past it) into the retired table, syncs the table, and removes the runs that
    /// end there. Afterwards the index no longer needs any batch below `logStartOffset`, also
    /// when it is rebuilt after a crash. `entries` reads a run in full (from the log if its
    /// file is damaged).
    func retire(below logStartOffset: Int64,
                entries: (KeyRun) throws(StorageError) -> [(key: IndexedKey, postings: [KeyPosting])]) throws(StorageError) {
        guard (retired?.toOffset ?? 0) < logStartOffset else { return }
        let count = runs.partitioningIndex { $0.toOffset > logStartOffset }
        var last: [IndexedKey: KeyPosting] = [:]
        func keep(_ key: IndexedKey, _ postings: [KeyPosting]) {
            guard let posting = postings.last(where: { $0.baseOffset < logStartOffset }) else { return }
            last[key] = KeyPosting(baseOffset: posting.baseOffset, lastDelta: posting.lastDelta, position: 0, length: 0)
        }
        var older = [retired].compactMap { $0 } + runs[..<count]
        if count < runs.count, runs[count].fromOffset < logStartOffset { older.append(runs[count]) }
        for run in older {
            for (key, postings) in try entries(run) { keep(key, postings) }
        }
        if activeStart < logStartOffset {
            for (key, postings) in active { keep(key, postings) }
        }
        retired = try KeyRun.write(last.map { ($0.key, [$0.value]) }, fromOffset: 0, toOffset: logStartOffset,
                                   directory: directory, name: KeyRun.retiredName, sync: true, io: io, cache: cache)
        try removeRuns(..<count)
    }

    private func removeRuns<Range: RangeExpression<Int>>(_ range: Range) throws(StorageError) {
        let removed = runs[range]
        runs.removeSubrange(range)
        for run in removed { _ = try Syscall.unlinkIfPresent(run.path) }
    }
}
