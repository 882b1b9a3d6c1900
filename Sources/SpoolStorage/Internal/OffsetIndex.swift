/// The sparse offset index of one segment: at which byte of the `.log` the batch holding an
/// offset starts, or the nearest indexed batch before it.
///
/// Invariants: entries ascend strictly in both `relativeOffset` and `position`; the first batch of
/// a non-empty segment has the entry (0, 0); every entry points at the start of a batch whose
/// baseOffset is `segment baseOffset + relativeOffset`; a batch gets an entry when it is the first
/// of the segment or at least `indexIntervalBytes` were appended since the last entry.
/// Not thread-safe: a value owned by its ``LogSegment``.
struct OffsetIndex: Equatable {
    /// One index entry.
    struct Entry: Equatable {
        /// Batch baseOffset minus segment baseOffset.
        var relativeOffset: UInt32
        /// Byte position of the batch in the `.log`.
        var position: UInt32
    }

    /// Bytes of one entry in the `.index` file.
    static let entrySize = 8

    private(set) var entries: [Entry] = []
    /// Bytes appended to the segment since the last entry.
    private var bytesSinceLastEntry = 0

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

    /// Writes `entry` into `buffer` (at least ``entrySize`` bytes):
    /// ```
    /// offset size field
    ///  0     4   relativeOffset  u32 little-endian, batch baseOffset - segment baseOffset
    ///  4     4   position        u32 little-endian, byte position of the batch in the .log
    /// ```
    static func encode(_ entry: Entry, into buffer: UnsafeMutableRawBufferPointer) {
        buffer.storeBytes(of: entry.relativeOffset.littleEndian, toByteOffset: 0, as: UInt32.self)
        buffer.storeBytes(of: entry.position.littleEndian, toByteOffset: 4, as: UInt32.self)
    }

    /// The whole `.index` file: the entries in order, ``entrySize`` bytes each.
    func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: entries.count * Self.entrySize)
        bytes.withUnsafeMutableBytes { buffer in
            for (number, entry) in entries.enumerated() {
                Self.encode(entry, into: UnsafeMutableRawBufferPointer(rebasing: buffer[(number * Self.entrySize)...]))
            }
        }
        return bytes
    }

    /// Parses an `.index` file and checks what can be checked without the log: whole entries,
    /// the first one (0, 0), strictly ascending fields. Throws ``StorageError/Code/corrupt``
    /// saying which rule broke.
    init(decoding bytes: [UInt8]) throws(StorageError) {
        guard bytes.count % Self.entrySize == 0 else {
            throw StorageError(.corrupt, "\(bytes.count) bytes, not a whole number of \(Self.entrySize)-byte entries")
        }
        entries = bytes.withUnsafeBytes { buffer in
            stride(from: 0, to: buffer.count, by: Self.entrySize).map { start in
                Entry(relativeOffset: UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: start, as: UInt32.self)),
                      position: UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: start + 4, as: UInt32.self)))
            }
        }
        if let first = entries.first, first != Entry(relativeOffset: 0, position: 0) {
            throw StorageError(.corrupt, "first entry is (\(first.relativeOffset), \(first.position)), not (0, 0)")
        }
        for (number, (previous, entry)) in zip(entries, entries.dropFirst()).enumerated()
        where entry.relativeOffset <= previous.relativeOffset || entry.position <= previous.position {
            throw StorageError(.corrupt, "entry \(number + 1) (\(entry.relativeOffset), \(entry.position)) does not ascend")
        }
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
