/// The sparse time index of one segment (`.timeindex`): for each entry of the ``OffsetIndex``, the
/// largest record timestamp stored *before* that entry's batch. A lookup for time `t` takes the
/// last entry whose timestamp is below `t`: every record before its batch is older than `t`, so
/// the first record at or after `t` is at or after that batch (binary search, then a short walk).
///
/// Invariants: entry `i` has the relative offset of offset-index entry `i` (the two files are
/// written together, entry for entry); relative offsets ascend strictly; timestamps never
/// descend; the first entry is (relative offset 0, ``noTimestamp``).
/// Not thread-safe: a value owned by its ``LogSegment``.
struct TimeIndex: Equatable {
    /// One index entry, stored in 12 bytes:
    /// ```
    /// offset size field
    ///  0     8   maxTimestampBefore  i64 little-endian, ms since the epoch (Int64.min: none)
    ///  8     4   relativeOffset      u32 little-endian, batch baseOffset - segment baseOffset
    /// ```
    struct Entry: IndexFileEntry {
        /// The largest timestamp of the records before this batch; ``noTimestamp`` for none.
        var maxTimestampBefore: Int64
        /// Batch baseOffset minus segment baseOffset.
        var relativeOffset: UInt32

        static let size = 12
        static let first = Entry(maxTimestampBefore: noTimestamp, relativeOffset: 0)

        init(maxTimestampBefore: Int64, relativeOffset: UInt32) {
            self.maxTimestampBefore = maxTimestampBefore
            self.relativeOffset = relativeOffset
        }

        init(loadingFrom buffer: UnsafeRawBufferPointer, at offset: Int) {
            maxTimestampBefore = Int64(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: Int64.self))
            relativeOffset = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self))
        }

        func store(into buffer: UnsafeMutableRawBufferPointer) {
            buffer.storeBytes(of: maxTimestampBefore.littleEndian, toByteOffset: 0, as: Int64.self)
            buffer.storeBytes(of: relativeOffset.littleEndian, toByteOffset: 8, as: UInt32.self)
        }

        func mayFollow(_ previous: Entry) -> Bool {
            relativeOffset > previous.relativeOffset && maxTimestampBefore >= previous.maxTimestampBefore
        }

        var description: String {
            "(\(maxTimestampBefore == TimeIndex.noTimestamp ? "none" : String(maxTimestampBefore)), \(relativeOffset))"
        }
    }

    /// The timestamp recorded when no record precedes a batch.
    static let noTimestamp = Int64.min

    private(set) var entries: [Entry] = []

    /// Appends the entry for a batch that got an offset-index entry.
    mutating func append(_ entry: Entry) {
        entries.append(entry)
    }

    /// Keeps the first `count` entries.
    mutating func truncate(toCount count: Int) {
        entries.removeSubrange(min(count, entries.count)...)
    }

    /// The relative offset of the batch a search for the first record at or after `timestamp`
    /// starts at: the last entry whose timestamp is below it (binary search), or 0.
    func startRelativeOffset(forTimestamp timestamp: Int64) -> UInt32 {
        let end = entries.partitioningIndex { $0.maxTimestampBefore >= timestamp }
        return end == 0 ? 0 : entries[end - 1].relativeOffset
    }

    // MARK: File format

    /// Bytes of one entry in the `.timeindex` file.
    static let entrySize = Entry.size

    /// The whole `.timeindex` file.
    func encoded() -> [UInt8] { IndexFile.encode(entries) }

    /// Parses a `.timeindex` file (see ``IndexFile/decode(_:)``): offsets must ascend strictly and
    /// timestamps never descend.
    init(decoding bytes: [UInt8]) throws(StorageError) {
        entries = try IndexFile.decode(bytes)
    }

    init() {}
}

/// The two sparse indexes of a segment, kept in step, and the largest timestamp seen so far.
///
/// Invariants: `times` has one entry per entry of `offsets`, with the same relative offsets;
/// `maxTimestamp` is the largest record timestamp of the batches accounted for
/// (``TimeIndex/noTimestamp`` for none).
struct SegmentIndexes: Equatable {
    var offsets = OffsetIndex()
    var times = TimeIndex()
    /// The largest record timestamp in the segment so far.
    private(set) var maxTimestamp = TimeIndex.noTimestamp

    /// Empty indexes, for an empty segment or a rebuild.
    init() {}

    /// Indexes as stored; call ``truncate(toIndexedPosition:)`` and scan the rest to learn
    /// `maxTimestamp`.
    init(offsets: OffsetIndex, times: TimeIndex) {
        self.offsets = offsets
        self.times = times
    }

    /// The entries the next batch appended at `relativeOffset` adds, if it gets any.
    func entries(forBatchAt relativeOffset: UInt32, position: Int, interval: Int) -> (OffsetIndex.Entry, TimeIndex.Entry)? {
        guard offsets.needsEntry(interval: interval) else { return nil }
        return (OffsetIndex.Entry(relativeOffset: relativeOffset, position: UInt32(position)),
                TimeIndex.Entry(maxTimestampBefore: maxTimestamp, relativeOffset: relativeOffset))
    }

    /// Accounts for a batch of `size` bytes appended at `position`, adding entries to both indexes
    /// when the offset index wants one.
    mutating func addBatch(relativeOffset: UInt32, position: Int, size: Int, maxTimestamp batchMax: Int64, interval: Int) {
        if let (_, timeEntry) = entries(forBatchAt: relativeOffset, position: position, interval: interval) {
            times.append(timeEntry)
        }
        offsets.addBatch(relativeOffset: relativeOffset, position: position, size: size, interval: interval)
        maxTimestamp = max(maxTimestamp, batchMax)
    }

    /// Drops the entries at or after byte `position` (the start of an indexed batch), so that a
    /// scan from `position` re-adds them. Returns false, changing nothing, when the time index
    /// does not have the entry there (then the indexes cannot be trusted; rebuild them).
    mutating func truncate(toIndexedPosition position: Int) -> Bool {
        let kept = offsets.entries.partitioningIndex { Int($0.position) >= position }
        guard kept < offsets.entries.count, kept < times.entries.count,
              times.entries[kept].relativeOffset == offsets.entries[kept].relativeOffset,
              times.entries[..<kept].lazy.map(\.relativeOffset).elementsEqual(offsets.entries[..<kept].lazy.map(\.relativeOffset))
        else { return false }
        maxTimestamp = times.entries[kept].maxTimestampBefore
        offsets.truncate(toPosition: position)
        times.truncate(toCount: kept)
        return true
    }
}
