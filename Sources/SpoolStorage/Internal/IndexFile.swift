/// An entry of a fixed-size index file (`.index`, `.timeindex`): its bytes and the order that
/// the entries of a stored file must keep.
protocol IndexFileEntry: Equatable, CustomStringConvertible {
    /// Bytes of one entry in the file.
    static var size: Int { get }
    /// The entry every non-empty file starts with.
    static var first: Self { get }
    /// Writes the entry, little-endian, into the first ``size`` bytes of `buffer`.
    func store(into buffer: UnsafeMutableRawBufferPointer)
    /// Reads the entry at byte `offset` of `buffer`.
    init(loadingFrom buffer: UnsafeRawBufferPointer, at offset: Int)
    /// True if the entry may come right after `previous` in a file.
    func mayFollow(_ previous: Self) -> Bool
}

/// Encoding and checked decoding of an index file: its entries back to back, nothing else.
enum IndexFile {
    /// The whole file holding `entries`.
    static func encode<Entry: IndexFileEntry>(_ entries: [Entry]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: entries.count * Entry.size)
        bytes.withUnsafeMutableBytes { buffer in
            for (number, entry) in entries.enumerated() {
                entry.store(into: UnsafeMutableRawBufferPointer(rebasing: buffer[(number * Entry.size)...]))
            }
        }
        return bytes
    }

    /// The entries of a stored file, after checking what can be checked without the log: whole
    /// entries, the first one ``IndexFileEntry/first``, each following the one before. Throws
    /// ``StorageError/Code/corrupt`` saying which rule broke.
    static func decode<Entry: IndexFileEntry>(_ bytes: [UInt8]) throws(StorageError) -> [Entry] {
        guard bytes.count % Entry.size == 0 else {
            throw StorageError(.corrupt, "\(bytes.count) bytes, not a whole number of \(Entry.size)-byte entries")
        }
        let entries = bytes.withUnsafeBytes { buffer in
            stride(from: 0, to: buffer.count, by: Entry.size).map { Entry(loadingFrom: buffer, at: $0) }
        }
        if let first = entries.first, first != Entry.first {
            throw StorageError(.corrupt, "first entry is \(first), not \(Entry.first)")
        }
        for (number, (previous, entry)) in zip(entries, entries.dropFirst()).enumerated() where !entry.mayFollow(previous) {
            throw StorageError(.corrupt, "entry \(number + 1) \(entry) does not ascend from \(previous)")
        }
        return entries
    }
}
