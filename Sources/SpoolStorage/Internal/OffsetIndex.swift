/// The sparse offset index of one segment: at which byte of the `.log` the batch holding an
/// offset starts, or the nearest indexed batch before it.
///
/// Invariants: entries ascend strictly in both `relativeOffset` and `position`; the first batch of
/// a non-empty segment has the entry (0, 0); every entry points at the start of a batch whose
/// baseOffset is `segment baseOffset + relativeOffset`; a batch gets an entry when it is the first
/// of the segment or at least `indexIntervalBytes` were appended since the last entry.
/// Not thread-safe: a value owned by its ``LogSegment``.
struct OffsetIndex: Equatable {
    /// One index entry, stored in 8 bytes:
    /// ```
    /// offset size field
    ///  0     4   relativeOffset  u32 little-endian, batch baseOffset - segment baseOffset
    ///  4     4   position        u32 little-endian, byte position of the batch in the .log
    /// ```
    struct Entry: IndexFileEntry {
        /// Batch baseOffset minus segment baseOffset.
        var relativeOffset: UInt32
        /// Byte position of the batch in the `.log`.
        var position: UInt32

        static let size = 8
        static let first = Entry(relativeOffset: 0, position: 0)

        init(relativeOffset: UInt32, position: UInt32) {
            self.relativeOffset = relativeOffset
            self.position = position
        }

        init(loadingFrom buffer: UnsafeRawBufferPointer, at offset: Int) {
            relativeOffset = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            position = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
        }

        func store(into buffer: UnsafeMutableRawBufferPointer) {
            buffer.storeBytes(of: relativeOffset.littleEndian, toByteOffset: 0, as: UInt32.self)
            buffer.storeBytes(of: position.littleEndian, toByteOffset: 4, as: UInt32.self)
        }

        func mayFollow(_ previous: Entry) -> Bool {
            relativeOffset > previous.relativeOffset && position > previous.position
        }

        var description: String { "(\(relativeOffset), \(position))" }
    }

    /// Bytes of one entry in the `.index` file.
    static let entrySize = Entry.size

    private(set) var entries: [Entry] = []
    /// Bytes appended to the segment since the last entry.
    private var bytesSinceLastEntry = 0

    /// Equal when the entries are, which is all the `.index` file holds: the bytes since the last
    /// entry are the appender's bookkeeping (a stored index read back does not know them, and a
    /// clean open must not rewrite every index file for that).
    static func == (left: OffsetIndex, right: OffsetIndex) -> Bool {
        left.entries == right.entries
    }

    /// True if the next batch appended gets an entry.
    func needsEntry(interval: Int) -> Bool {
        entries.isEmpty || bytesSinceLastEntry >= interval
    }

    /// Accounts for a batch of `size` bytes appended at `position`, adding an entry if
    /// ``needsEntry(interval:)`` says so.
    mutating func addBatch(relativeOffset: UInt32, position: Int, size: Int, interval: Int) {
        if needsEntry(interval: interval) {
            entries.append(Entry(relativeOffset: relativeOffset, position: UInt32(position)))
            bytesSinceLastEntry = 0
        }
        bytesSinceLastEntry += size
    }

    /// Drops the entries at or after byte `position` of the log, which becomes its end.
    mutating func truncate(toPosition position: Int) {
        entries.removeSubrange(entries.partitioningIndex { Int($0.position) >= position }...)
        bytesSinceLastEntry = entries.last.map { position - Int($0.position) } ?? 0
    }

    /// The last entry whose offset is at or below `relativeOffset`.
    func entry(atOrBelowOffset relativeOffset: Int64) -> Entry? {
        last(atOrBelow: { Int64($0.relativeOffset) <= relativeOffset })
    }

    /// The last entry whose position is at or below `position`.
    func entry(atOrBelowPosition position: Int) -> Entry? {
        last(atOrBelow: { Int($0.position) <= position })
    }

    /// Binary search for the last entry satisfying `isAtOrBelow`, which holds for a prefix of the
    /// entries (both fields ascend).
    private func last(atOrBelow isAtOrBelow: (Entry) -> Bool) -> Entry? {
        let end = entries.partitioningIndex { !isAtOrBelow($0) }
        return end == 0 ? nil : entries[end - 1]
    }

    // MARK: File format

    /// The whole `.index` file.
    func encoded() -> [UInt8] { IndexFile.encode(entries) }

    /// Parses an `.index` file (see ``IndexFile/decode(_:)``): both fields must ascend strictly.
    init(decoding bytes: [UInt8]) throws(StorageError) {
        entries = try IndexFile.decode(bytes)
    }

    init() {}
}

extension RandomAccessCollection {
    /// The index of the first element for which `belongsToSecondPart` holds, for a collection
    /// partitioned so that it holds for a suffix (binary search).
    func partitioningIndex(where belongsToSecondPart: (Element) -> Bool) -> Index {
        var low = startIndex
        var count = self.count
        while count > 0 {
            let half = count / 2
            let middle = index(low, offsetBy: half)
            if belongsToSecondPart(self[middle]) {
                count = half
            } else {
                low = index(after: middle)
                count -= half + 1
            }
        }
        return low
    }
}
