import CSpoolChecksum
import SpoolWire

/// The byte layout of the ``OffsetStore``'s files. Integers are little-endian; a string is a
/// `u16` byte length then UTF-8 (as on the wire).
///
/// ```
/// <20-digit generation>.log      log header, then one framed commit entry per commit request
///   magic      4 bytes  "SPOL"
///   version    u8       1
///   reserved   3 bytes  zero
///   entries:   u32 payload length | u32 CRC-32C of the payload | payload
///     payload: group string | u32 count | count × (topic string, partition i32, offset i64, metadata string)
///
/// offsets.snapshot               snapshot header, then one frame holding the whole map
///   magic      4 bytes  "SPOS"
///   version    u8       1
///   reserved   3 bytes  zero
///   generation u64      the snapshot holds every commit of the logs whose generation is below this
///   frame:     u32 payload length | u32 CRC-32C of the payload | payload
///     payload: u32 group count | that many commit payloads (as in the log), one per group
/// ```
enum OffsetStoreFormat {
    static let logMagic: [UInt8] = Array("SPOL".utf8)
    static let snapshotMagic: [UInt8] = Array("SPOS".utf8)
    /// The format version this build writes and the newest it reads.
    static let version: UInt8 = 1
    /// Magic, version, reserved.
    static let logHeaderSize = 8
    /// Magic, version, reserved, generation.
    static let snapshotHeaderSize = 16
    /// Where the snapshot header holds its generation.
    static let snapshotGenerationPosition = 8
    /// Length and checksum in front of each payload.
    static let frameHeaderSize = 8
    /// Smallest encoded commit payload: an empty group string (2) and a count (4).
    static let minimumCommitSize = 6
    /// Smallest encoded offset: empty topic (2), partition (4), offset (8), empty metadata (2).
    static let minimumOffsetSize = 16

    static let snapshotFileName = "offsets.snapshot"
    static let logSuffix = ".log"
    /// Suffix of a file being written atomically (see ``FileIO/writeAtomically(_:directory:name:)``).
    static let temporarySuffix = FileIO.temporarySuffix
    /// Suffix of a copy of bytes that recovery cut.
    static let setAsideSuffix = ".corrupt"

    /// A map from group to its committed offsets.
    typealias Map = [String: [TopicPartition: CommittedOffset]]

    // MARK: Encoding

    static let logHeader: [UInt8] = logMagic + [version, 0, 0, 0]

    /// The commit payload of `group` with `offsets`, in their order.
    static func encodeCommit(group: String, offsets: some Collection<CommittedOffset>, into writer: inout WireWriter) {
        writer.write(group)
        writer.write(UInt32(offsets.count))
        for offset in offsets {
            writer.write(offset.partition.topic)
            writer.write(offset.partition.partition)
            writer.write(offset.offset)
            writer.write(offset.metadata)
        }
    }

    /// One log entry: frame header and the commit payload.
    static func logEntry(group: String, offsets: [CommittedOffset]) -> [UInt8] {
        var writer = WireWriter(capacity: 64 + offsets.count * 32)
        writer.write(UInt64(0))  // length and checksum, filled in below
        encodeCommit(group: group, offsets: offsets, into: &writer)
        return framed(writer, at: 0)
    }

    /// The whole snapshot file for `map` (groups and partitions sorted, so equal maps give equal bytes).
    static func snapshot(of map: Map, generation: Int64) -> [UInt8] {
        var writer = WireWriter(capacity: 1024)
        writer.writeRaw(snapshotMagic + [version, 0, 0, 0])
        writer.write(generation)
        writer.write(UInt64(0))  // length and checksum, filled in below
        writer.write(UInt32(map.count))
        for group in map.keys.sorted() {
            encodeCommit(group: group, offsets: map[group, default: [:]].values.sorted { $0.partition < $1.partition }, into: &writer)
        }
        return framed(writer, at: snapshotHeaderSize)
    }

    /// Fills in the length and checksum of the frame starting at `start`, which runs to the end.
    private static func framed(_ writer: WireWriter, at start: Int) -> [UInt8] {
        var writer = writer
        let payloadStart = start + frameHeaderSize
        let checksum = writer.bytes.withUnsafeBytes { crc32c(UnsafeRawBufferPointer(rebasing: $0[payloadStart...])) }
        writer.overwrite(UInt32(writer.bytes.count - payloadStart), at: start)
        writer.overwrite(checksum, at: start + 4)
        return writer.bytes
    }

    private static func corrupt(_ message: String) -> WireError { WireError(.corruptBatch, message) }

    static func crc32c(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        bytes.isEmpty ? 0 : spool_crc32c(0, bytes.baseAddress!, bytes.count)
    }

    // MARK: Decoding

    /// Why a file header is unusable.
    enum HeaderProblem: Error {
        /// Written by a newer build: never cut or set aside, refuse to open instead.
        case newerVersion(UInt8)
        case invalid(String)
    }

    /// Checks the magic and version at the start of `bytes`.
    static func checkHeader(_ bytes: UnsafeRawBufferPointer, magic: [UInt8], size: Int) -> HeaderProblem? {
        guard bytes.count >= size else { return .invalid("file of \(bytes.count) bytes is shorter than its \(size)-byte header") }
        guard bytes.prefix(magic.count).elementsEqual(magic) else {
            return .invalid("bad magic \(Array(bytes.prefix(magic.count))), expected \(magic)")
        }
        if bytes[magic.count] > version { return .newerVersion(bytes[magic.count]) }
        guard bytes[magic.count] == version else { return .invalid("unknown version \(bytes[magic.count])") }
        return nil
    }

    /// One frame at `position`: its payload, or why it is torn or corrupt.
    static func frame(in bytes: UnsafeRawBufferPointer, at position: Int) -> Result<UnsafeRawBufferPointer, WireError> {
        let remaining = bytes.count - position
        guard remaining >= frameHeaderSize else {
            return .failure(corrupt("torn entry at byte \(position): \(remaining) bytes remain of its \(frameHeaderSize)-byte header"))
        }
        let length = Int(bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self).littleEndian)
        let stored = bytes.loadUnaligned(fromByteOffset: position + 4, as: UInt32.self).littleEndian
        guard length <= remaining - frameHeaderSize else {
            return .failure(corrupt("torn entry at byte \(position): length says \(length) bytes, \(remaining - frameHeaderSize) remain"))
        }
        let payload = UnsafeRawBufferPointer(rebasing: bytes[(position + frameHeaderSize)..<(position + frameHeaderSize + length)])
        let computed = crc32c(payload)
        guard computed == stored else {
            return .failure(corrupt("corrupt entry at byte \(position): checksum mismatch (stored \(stored), computed \(computed))"))
        }
        return .success(payload)
    }

    /// Reads one commit payload (group and offsets) from `reader`.
    static func decodeCommit(_ reader: inout WireReader) throws(WireError) -> (group: String, offsets: [CommittedOffset]) {
        let group = try reader.readString()
        guard !group.isEmpty else { throw corrupt("empty group name") }
        let count = Int(try reader.read(UInt32.self))
        guard count <= reader.remaining / minimumOffsetSize else { throw corrupt("offset count \(count) does not fit") }
        var offsets: [CommittedOffset] = []
        offsets.reserveCapacity(count)
        for _ in 0..<count {
            let topic = try reader.readString()
            let partition: Int32 = try reader.read()
            offsets.append(CommittedOffset(partition: TopicPartition(topic: topic, partition: partition),
                                           offset: try reader.read(), metadata: try reader.readString()))
        }
        return (group, offsets)
    }

    /// Reads the log entries after the header: every valid entry in order, the end of the last
    /// one, and why the scan stopped before the end of `bytes`, if it did.
    static func scanLog(_ bytes: UnsafeRawBufferPointer) -> (commits: [(group: String, offsets: [CommittedOffset])], validBytes: Int, problem: String?) {
        var commits: [(group: String, offsets: [CommittedOffset])] = []
        var position = logHeaderSize
        while position < bytes.count {
            let decoded = frame(in: bytes, at: position).flatMap { payload in
                Result { () throws(WireError) in
                    var reader = WireReader(payload, errorCode: .corruptBatch)
                    let commit = try decodeCommit(&reader)
                    try reader.expectEnd("the commit")
                    return commit
                }
            }
            switch decoded {
            case .success(let commit):
                commits.append(commit)
                position += frameHeaderSize + Int(bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self).littleEndian)
            case .failure(let error):
                let reason = error.message.hasPrefix("torn") || error.message.hasPrefix("corrupt entry")
                    ? error.message : "corrupt entry at byte \(position): \(error.message)"
                return (commits, position, reason)
            }
        }
        return (commits, position, nil)
    }

    /// Reads a whole snapshot file: its generation and map.
    static func decodeSnapshot(_ bytes: UnsafeRawBufferPointer) -> Result<(generation: Int64, map: Map), HeaderProblem> {
        if let problem = checkHeader(bytes, magic: snapshotMagic, size: snapshotHeaderSize) { return .failure(problem) }
        let generation = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: snapshotGenerationPosition, as: Int64.self))
        let decoded = frame(in: bytes, at: snapshotHeaderSize).flatMap { payload in
            Result { () throws(WireError) -> Map in
                guard snapshotHeaderSize + frameHeaderSize + payload.count == bytes.count else {
                    throw corrupt("\(bytes.count - snapshotHeaderSize - frameHeaderSize - payload.count) bytes after the map")
                }
                var reader = WireReader(payload, errorCode: .corruptBatch)
                let count = Int(try reader.read(UInt32.self))
                guard count <= reader.remaining / minimumCommitSize else { throw corrupt("group count \(count) does not fit") }
                var map: Map = [:]
                for _ in 0..<count {
                    let (group, offsets) = try decodeCommit(&reader)
                    apply(group: group, offsets: offsets, to: &map)
                }
                try reader.expectEnd("the map")
                return map
            }
        }
        switch decoded {
        case .success(let map):
            // A compaction adds one; anything near Int64.max is damage (and would overflow the next one).
            guard (0...(Int64(1) << 62)).contains(generation) else { return .failure(.invalid("generation \(generation) is out of range")) }
            return .success((generation, map))
        case .failure(let error):
            return .failure(.invalid(error.message))
        }
    }

    /// Stores each offset of `offsets` under `group`, later ones replacing earlier ones.
    static func apply(group: String, offsets: [CommittedOffset], to map: inout Map) {
        guard !offsets.isEmpty else { return }
        for offset in offsets { map[group, default: [:]][offset.partition] = offset }
    }

    // MARK: Names

    /// `00000000000000000003.log` for generation 3.
    static func logFileName(generation: Int64) -> String {
        LogSegment.fileName(baseOffset: generation, suffix: logSuffix)
    }

    /// The generation a log file name stands for, or nil if the name is not 20 digits + `.log`.
    static func generation(logFileName name: String) -> Int64? {
        LogSegment.baseOffset(logFileName: name)
    }
}
