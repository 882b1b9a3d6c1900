import CSpoolChecksum
import Glibc
import SpoolWire

/// A batch that holds records of one key: where it is and which of its records is the key's last.
struct KeyPosting: Hashable, Sendable {
    /// Base offset of the batch.
    var baseOffset: Int64
    /// Offset of the key's last record in the batch, minus `baseOffset`.
    var lastDelta: UInt32
    /// Byte position of the batch in its segment's `.log`.
    var position: UInt32
    /// Bytes of the batch; 0 in the retired table (the batch was deleted by retention).
    var length: UInt32

    /// Offset of the key's last record in the batch.
    var lastOffset: Int64 { baseOffset + Int64(lastDelta) }

    /// Bytes of one posting in a key-run file.
    static let size = 20
}

/// The key of a record, as the key index holds it, with its 64-bit hash (FNV-1a, then the
/// MurmurHash3 finalizer), which orders entries in files and drives the Bloom filters. Two keys
/// are equal only if their bytes are: the hash never stands in for the key.
struct IndexedKey: Hashable, Sendable {
    let bytes: [UInt8]
    let hash: UInt64

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        hash = bytes.withUnsafeBytes(Self.hash)
    }

    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        hash ^= hash >> 33
        hash &*= 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        hash &*= 0xc4ce_b9fe_1a85_ec53
        return hash ^ (hash >> 33)
    }

    func hash(into hasher: inout Hasher) { hasher.combine(hash) }

    /// The order of entries in a key-run file: by hash, then by bytes.
    static func precedes(_ left: IndexedKey, _ right: IndexedKey) -> Bool {
        left.hash != right.hash ? left.hash < right.hash : left.bytes.lexicographicallyPrecedes(right.bytes)
    }
}

/// One immutable file of the key index (`<20-digit fromOffset>.keys`, or `retired.keys`): every key
/// with records in the offsets `from..<to` of one segment, and the batches holding them.
///
/// ```
/// offset size  field
///  0     4     magic          "SPKR"
///  4     2     version        1
///  6     2     reserved       0
///  8     8     fromOffset     i64, first offset covered
/// 16     8     toOffset       i64, offset after the last one covered
/// 24     8     keyCount       u64
/// 32     8     entriesBytes   u64
/// 40     4     bloomWords     u32, 64-bit words of the Bloom filter
/// 44     4     entriesCRC     u32, CRC-32C of the entries
/// 48     …     entries        sorted by (hash, key bytes), each:
///                             u64 hash, u32 keyLength, u32 postingCount, key bytes,
///                             postings (i64 baseOffset, u32 lastDelta, u32 position, u32 length),
///                             in offset order
///  …     8·w   bloom          bit (hash + i·(hash >> 32 | 1)) mod (64·w) set for i in 0..<7
///  …     16·s  sparse         every 32nd entry: u64 hash, u64 position in entries; s = ⌈keyCount / 32⌉
///  …     4     summaryCRC     u32, CRC-32C of the header, bloom and sparse
/// ```
/// All integers little-endian. Opening reads the header, Bloom filter and sparse index (checked
/// by `summaryCRC`); `entriesCRC` is checked when the entries are read in full (a merge, an open
/// after a crash). A lookup reads the entries between two sparse entries.
final class KeyRun {
    static let magic: [UInt8] = Array("SPKR".utf8)
    static let version: UInt16 = 1
    static let headerSize = 48
    static let sparseInterval = 32
    static let bloomBitsPerKey = 10
    static let bloomHashes = 7
    /// Suffix of a run file's name.
    static let suffix = ".keys"
    /// Name of the table of keys whose segments retention deleted.
    static let retiredName = "retired.keys"

    let file: CachedFile
    let fromOffset: Int64
    let toOffset: Int64
    let keyCount: Int
    let entriesBytes: Int
    private let bloom: [UInt64]
    private let sparse: [(hash: UInt64, position: Int)]
    private let entriesCRC: UInt32

    var path: String { file.path }
    /// Bytes of the file.
    var fileBytes: Int { Self.headerSize + entriesBytes + bloom.count * 8 + sparse.count * 16 + 4 }
    /// Bytes this run keeps in memory: its Bloom filter and sparse index.
    var memoryBytes: Int { bloom.count * 8 + sparse.count * 16 }

    private init(file: CachedFile, fromOffset: Int64, toOffset: Int64, keyCount: Int, entriesBytes: Int,
                 bloom: [UInt64], sparse: [(hash: UInt64, position: Int)], entriesCRC: UInt32) {
        self.file = file
        self.fromOffset = fromOffset
        self.toOffset = toOffset
        self.keyCount = keyCount
        self.entriesBytes = entriesBytes
        self.bloom = bloom
        self.sparse = sparse
        self.entriesCRC = entriesCRC
    }

    static func fileName(fromOffset: Int64) -> String {
        LogSegment.fileName(baseOffset: fromOffset, suffix: suffix)
    }

    /// The fromOffset in a run file's name, or nil if `name` is not one.
    static func fromOffset(fileName name: String) -> Int64? {
        guard name.hasSuffix(suffix), name.count == 20 + suffix.count else { return nil }
        return Int64(name.prefix(20))
    }

    // MARK: Writing

    /// Writes a run of `entries` (any order; each key's postings in offset order) to `path`,
    /// through a temporary file renamed into place, so a reader never sees half a run. With
    /// `sync`, the file and the directory are synced before this returns (the retired table,
    /// the only copy of what it holds); otherwise the caller syncs the returned file.
    static func write(_ entries: [(key: IndexedKey, postings: [KeyPosting])], fromOffset: Int64, toOffset: Int64,
                      directory: String, name: String, sync: Bool, io: FileIO, cache: OpenFileCache) throws(StorageError) -> KeyRun {
        let sorted = entries.sorted { IndexedKey.precedes($0.key, $1.key) }
        var writer = WireWriter(capacity: headerSize + sorted.reduce(0) { $0 + 16 + $1.key.bytes.count + $1.postings.count * KeyPosting.size })
        writer.writeRaw(magic)
        writer.write(version)
        writer.write(UInt16(0))
        writer.write(fromOffset)
        writer.write(toOffset)
        writer.write(UInt64(sorted.count))
        writer.write(UInt64(0))  // entriesBytes, set below
        let bloomWords = max(1, (sorted.count * bloomBitsPerKey + 63) / 64)
        writer.write(UInt32(bloomWords))
        writer.write(UInt32(0))  // entriesCRC, set below
        var bloom = [UInt64](repeating: 0, count: bloomWords)
        var sparse: [(hash: UInt64, position: Int)] = []
        for (number, entry) in sorted.enumerated() {
            if number % sparseInterval == 0 { sparse.append((entry.key.hash, writer.bytes.count - headerSize)) }
            setBloomBits(&bloom, hash: entry.key.hash)
            writer.write(entry.key.hash)
            writer.write(UInt32(entry.key.bytes.count))
            writer.write(UInt32(entry.postings.count))
            writer.writeRaw(entry.key.bytes)
            for posting in entry.postings {
                writer.write(posting.baseOffset)
                writer.write(posting.lastDelta)
                writer.write(posting.position)
                writer.write(posting.length)
            }
        }
        let entriesBytes = writer.bytes.count - headerSize
        writer.overwrite(UInt64(entriesBytes), at: 32)
        let entriesCRC = writer.bytes.withUnsafeBytes { crc32c(UnsafeRawBufferPointer(rebasing: $0[headerSize...])) }
        writer.overwrite(entriesCRC, at: 44)
        let summaryStart = writer.bytes.count
        for word in bloom { writer.write(word) }
        for entry in sparse {
            writer.write(entry.hash)
            writer.write(UInt64(entry.position))
        }
        let summaryCRC = writer.bytes.withUnsafeBytes {
            crc32c(UnsafeRawBufferPointer(rebasing: $0[..<headerSize]), UnsafeRawBufferPointer(rebasing: $0[summaryStart...]))
        }
        writer.write(summaryCRC)

        let path = "\(directory)/\(name)"
        let temporaryPath = path + FileIO.temporarySuffix
        let file: CachedFile
        do throws(StorageError) {
            let temporary = try FileHandle(opening: temporaryPath, flags: O_RDWR | O_CREAT | O_TRUNC, io: io)
            try withBytes(of: writer.bytes) { (buffer) throws(StorageError) in try temporary.write(at: 0, buffer) }
            if sync { try temporary.sync() }
            try Syscall.rename(temporaryPath, to: path)
            file = try CachedFile(opening: path, flags: O_RDONLY, io: io, cache: cache)
        } catch {
            _ = try? Syscall.unlinkIfPresent(temporaryPath)
            throw error
        }
        if sync { try io.syncDirectory(directory) }
        return KeyRun(file: file, fromOffset: fromOffset, toOffset: toOffset, keyCount: sorted.count, entriesBytes: entriesBytes,
                      bloom: bloom, sparse: sparse, entriesCRC: entriesCRC)
    }

    // MARK: Opening

    /// Opens the run at `path`, checking its size, header, summary and the entries' checksum.
    /// Throws ``StorageError/Code/corrupt`` saying what is wrong.
    static func open(path: String, io: FileIO, cache: OpenFileCache) throws(StorageError) -> KeyRun {
        let file = try CachedFile(opening: path, flags: O_RDONLY, io: io, cache: cache)
        let size = try file.size()
        func corrupt(_ reason: String) -> StorageError { StorageError(.corrupt, "key index \(path): \(reason)") }
        guard size >= headerSize + 4 else { throw corrupt("\(size) bytes, shorter than a header") }
        let header = try readBytes(file, at: 0, count: headerSize)
        let decoded: (from: Int64, to: Int64, keys: UInt64, entries: UInt64, words: UInt32, crc: UInt32)?
        decoded = header.withUnsafeBytes { bytes in
            var reader = WireReader(bytes)
            do throws(WireError) {
                guard Array(try reader.readRaw(count: 4)) == magic, try reader.read(UInt16.self) == version else { return nil }
                _ = try reader.read(UInt16.self)
                return (try reader.read(), try reader.read(), try reader.read(), try reader.read(), try reader.read(), try reader.read())
            } catch {
                return nil
            }
        }
        guard let fields = decoded else { throw corrupt("bad magic or unknown version") }
        // Every count is checked against the file's size before it is used in arithmetic.
        guard fields.keys <= UInt64(size), fields.entries <= UInt64(size), fields.words <= UInt32(size) else {
            throw corrupt("header counts (\(fields.keys) keys, \(fields.entries) entry bytes, \(fields.words) bloom words) exceed the file's \(size) bytes")
        }
        let keyCount = Int(fields.keys)
        let sparseCount = (keyCount + sparseInterval - 1) / sparseInterval
        let expected = UInt64(headerSize) &+ fields.entries &+ UInt64(fields.words) * 8 &+ UInt64(sparseCount) * 16 &+ 4
        guard fields.keys <= UInt64(size), fields.entries <= UInt64(size), fields.words >= 1, expected == UInt64(size),
              fields.from >= 0, fields.to >= fields.from else {
            throw corrupt("header (from \(fields.from), to \(fields.to), \(fields.keys) keys, \(fields.entries) entry bytes, \(fields.words) bloom words) does not match the file's \(size) bytes")
        }
        let entriesBytes = Int(fields.entries)
        let summaryStart = headerSize + entriesBytes
        let summary = try readBytes(file, at: summaryStart, count: size - summaryStart)
        let storedCRC = summary.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: summary.count - 4, as: UInt32.self) }.littleEndian
        let computedCRC = header.withUnsafeBytes { header in
            summary.withUnsafeBytes { crc32c(header, UnsafeRawBufferPointer(rebasing: $0[..<(summary.count - 4)])) }
        }
        guard storedCRC == computedCRC else { throw corrupt("summary checksum mismatch") }
        let (bloom, sparse) = summary.withUnsafeBytes { bytes in
            let bloom = (0..<Int(fields.words)).map { bytes.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self).littleEndian }
            let sparseStart = Int(fields.words) * 8
            let sparse = (0..<sparseCount).map { number in
                (hash: bytes.loadUnaligned(fromByteOffset: sparseStart + number * 16, as: UInt64.self).littleEndian,
                 position: Int(truncatingIfNeeded: bytes.loadUnaligned(fromByteOffset: sparseStart + number * 16 + 8, as: UInt64.self).littleEndian))
            }
            return (bloom, sparse)
        }
        guard sparse.allSatisfy({ $0.position >= 0 && $0.position < entriesBytes }),
              zip(sparse, sparse.dropFirst()).allSatisfy({ $0.hash <= $1.hash && $0.position < $1.position }) else {
            throw corrupt("sparse index out of order or out of range")
        }
        let run = KeyRun(file: file, fromOffset: fields.from, toOffset: fields.to, keyCount: keyCount, entriesBytes: entriesBytes,
                         bloom: bloom, sparse: sparse, entriesCRC: fields.crc)
        let entries = try readBytes(file, at: headerSize, count: entriesBytes)
        guard entries.withUnsafeBytes({ crc32c($0) }) == fields.crc else { throw corrupt("entries checksum mismatch") }
        return run
    }

    // MARK: Reading

    /// The postings of `key` in this run, or nil if it has none.
    func postings(of key: IndexedKey) throws(StorageError) -> [KeyPosting]? {
        guard mayContain(key.hash), !sparse.isEmpty else { return nil }
        // Entries with this hash start after the last sparse entry with a smaller hash.
        let after = sparse.partitioningIndex(where: { $0.hash >= key.hash })
        let start = after == 0 ? 0 : sparse[after - 1].position
        let beyond = sparse[after...].partitioningIndex(where: { $0.hash > key.hash })
        let end = beyond < sparse.count ? sparse[beyond].position : entriesBytes
        let bytes = try Self.readBytes(file, at: Self.headerSize + start, count: end - start)
        var found: [KeyPosting]?
        try scan(bytes) { (hash, keyBytes, postings) throws(StorageError) in
            guard hash <= key.hash else { return false }
            if hash == key.hash, keyBytes.elementsEqual(key.bytes) { found = postings(); return false }
            return true
        }
        return found
    }

    /// Every entry, in file order, after checking the entries' checksum and order.
    func allEntries() throws(StorageError) -> [(key: IndexedKey, postings: [KeyPosting])] {
        let bytes = try Self.readBytes(file, at: Self.headerSize, count: entriesBytes)
        guard bytes.withUnsafeBytes({ Self.crc32c($0) }) == entriesCRC else {
            throw StorageError(.corrupt, "key index \(path): entries checksum mismatch")
        }
        var entries: [(key: IndexedKey, postings: [KeyPosting])] = []
        entries.reserveCapacity(keyCount)
        try scan(bytes) { (_, keyBytes, postings) throws(StorageError) in
            entries.append((IndexedKey(Array(keyBytes)), postings()))
            return true
        }
        guard entries.count == keyCount, zip(entries, entries.dropFirst()).allSatisfy({ IndexedKey.precedes($0.key, $1.key) }) else {
            throw StorageError(.corrupt, "key index \(path): \(entries.count) entries out of order or not the \(keyCount) the header says")
        }
        return entries
    }

    /// Walks the entries in `bytes` while `body` returns true; `body` gets the stored hash, the
    /// key bytes and a function decoding the postings. Throws ``StorageError/Code/corrupt`` on
    /// an entry that does not fit.
    private func scan(_ bytes: [UInt8],
                      _ body: (UInt64, UnsafeRawBufferPointer, () -> [KeyPosting]) throws(StorageError) -> Bool) throws(StorageError) {
        try withBytes(of: bytes) { (buffer) throws(StorageError) in
            var position = 0
            while position < buffer.count {
                guard buffer.count - position >= 16 else { throw StorageError(.corrupt, "key index \(path): torn entry header") }
                let hash = buffer.loadUnaligned(fromByteOffset: position, as: UInt64.self).littleEndian
                let keyLength = Int(buffer.loadUnaligned(fromByteOffset: position + 8, as: UInt32.self).littleEndian)
                let postingCount = Int(buffer.loadUnaligned(fromByteOffset: position + 12, as: UInt32.self).littleEndian)
                let keyStart = position + 16
                let postingsStart = keyStart + keyLength
                let end = postingsStart + postingCount * KeyPosting.size
                guard postingCount > 0, end <= buffer.count else {
                    throw StorageError(.corrupt, "key index \(path): entry at byte \(position) with a \(keyLength)-byte key and \(postingCount) postings does not fit")
                }
                let key = UnsafeRawBufferPointer(rebasing: buffer[keyStart..<postingsStart])
                let more = try body(hash, key) {
                    (0..<postingCount).map { number in
                        let at = postingsStart + number * KeyPosting.size
                        return KeyPosting(baseOffset: buffer.loadUnaligned(fromByteOffset: at, as: Int64.self).littleEndian,
                                          lastDelta: buffer.loadUnaligned(fromByteOffset: at + 8, as: UInt32.self).littleEndian,
                                          position: buffer.loadUnaligned(fromByteOffset: at + 12, as: UInt32.self).littleEndian,
                                          length: buffer.loadUnaligned(fromByteOffset: at + 16, as: UInt32.self).littleEndian)
                    }
                }
                if !more { return }
                position = end
            }
        }
    }

    private func mayContain(_ hash: UInt64) -> Bool {
        let bits = UInt64(bloom.count * 64)
        let step = hash >> 32 | 1
        for number in 0..<UInt64(Self.bloomHashes) {
            let bit = (hash &+ number &* step) % bits
            if bloom[Int(bit / 64)] & (1 << (bit % 64)) == 0 { return false }
        }
        return true
    }

    private static func setBloomBits(_ bloom: inout [UInt64], hash: UInt64) {
        let bits = UInt64(bloom.count * 64)
        let step = hash >> 32 | 1
        for number in 0..<UInt64(bloomHashes) {
            let bit = (hash &+ number &* step) % bits
            bloom[Int(bit / 64)] |= 1 << (bit % 64)
        }
    }

    private static func readBytes(_ file: CachedFile, at position: Int, count: Int) throws(StorageError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let read = try withMutableBytes(of: &bytes) { (buffer) throws(StorageError) in try file.read(into: buffer, at: position) }
        guard read == count else { throw StorageError(.corrupt, "key index \(file.path): ends at byte \(position + read), expected \(position + count)") }
        return bytes
    }

    private static func crc32c(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) -> UInt32 {
        var crc: UInt32 = 0
        if !first.isEmpty { crc = spool_crc32c(crc, first.baseAddress!, first.count) }
        if !second.isEmpty { crc = spool_crc32c(crc, second.baseAddress!, second.count) }
        return crc
    }
}
