import CSpoolChecksum

/// The record-batch format, version 1. The bytes on the wire are the bytes on disk: the broker
/// validates a batch, stamps `baseOffset`, and appends it unchanged. The checksum covers bytes
/// 17 to the end (from `attributes` on), so stamping needs no re-checksum. `docs/protocol.md`
/// specifies the format for implementers of other clients.
///
/// ```
/// offset size field            meaning
///  0     8   baseOffset        i64, offset of the first record; 0 from producers, stamped by the broker
///  8     4   batchLength       u32, bytes after this field (total size = 12 + batchLength)
/// 12     1   magic             format version, 1
/// 13     4   crc               u32, CRC-32C of bytes [17, end)
/// 17     2   attributes        u16, bits 0-2 compression (0 = none; v1 accepts only 0), bit 3 compacted, rest 0
/// 19     4   lastOffsetDelta   u32, recordCount - 1 (offsets inside a batch are dense); compacted: see below
/// 23     8   firstTimestamp    i64, ms since the epoch: the first record's timestamp
/// 31     8   maxTimestamp      i64, ms since the epoch: the largest record timestamp
/// 39     8   producerID        i64, -1 without idempotence
/// 47     2   producerEpoch     i16, -1 without idempotence
/// 49     4   baseSequence      i32, -1 without idempotence
/// 53     4   recordCount       u32, at least 1; compacted: 0 or more
/// 57     …   records
/// ```
/// A *compacted* batch (attribute bit 3, ``compactedAttribute``) is one the broker's log cleaner
/// rewrote: it still covers the offsets `baseOffset...baseOffset + lastOffsetDelta`, but holds only
/// the records kept (their offset deltas strictly increase, with gaps), possibly none. Producers
/// never send one; readers must take offsets from the records, not from their position.
/// Each record (varints are LEB128, signed ones zig-zag):
/// ```
/// varint length         bytes of the record after this field
/// u8     attributes     0
/// zigzag timestampDelta from firstTimestamp
/// zigzag offsetDelta    0, 1, 2, … in order (compacted batch: increasing, at most lastOffsetDelta)
/// zigzag keyLength      -1 for no key, then the key bytes
/// zigzag valueLength    then the value bytes
/// varint headerCount    then per header: zigzag nameLength, UTF-8 name, zigzag valueLength, value
/// ```
/// All integers little-endian.
public enum RecordBatch {
    /// Format version written in the `magic` byte.
    public static let magic: UInt8 = 1
    /// Bytes before `batchLength` counts: baseOffset (8) + batchLength (4).
    public static let lengthPrefixSize = 12
    /// Size of the fixed batch header, up to the first record.
    public static let headerSize = 57
    /// Where the checksummed region starts.
    static let checksumStart = 17
    /// The attribute bit of a batch the log cleaner rewrote (see the format above).
    public static let compactedAttribute: UInt16 = 1 << 3
    static let magicOffset = 12
    static let crcOffset = 13

    /// Fixed fields of one batch, read without touching the records.
    public struct Header: Hashable, Sendable {
        /// Offset of the first record.
        public var baseOffset: Int64
        /// Bytes after the length field; the batch occupies `12 + batchLength` bytes.
        public var batchLength: UInt32
        /// Format version.
        public var magic: UInt8
        /// Stored CRC-32C of bytes [17, end).
        public var crc: UInt32
        /// Attribute bits (compression); 0 in v1.
        public var attributes: UInt16
        /// `recordCount - 1`.
        public var lastOffsetDelta: UInt32
        /// Timestamp of the first record.
        public var firstTimestamp: Int64
        /// Largest record timestamp in the batch.
        public var maxTimestamp: Int64
        /// Idempotent producer id, or -1.
        public var producerID: Int64
        /// Idempotent producer epoch, or -1.
        public var producerEpoch: Int16
        /// Sequence number of the first record for its producer and partition, or -1.
        public var baseSequence: Int32
        /// Number of records, at least 1 in a valid batch (0 or more in a compacted one).
        public var recordCount: UInt32

        /// Whether the log cleaner rewrote the batch (``RecordBatch/compactedAttribute``).
        public var isCompacted: Bool { attributes & RecordBatch.compactedAttribute != 0 }

        /// Total bytes the batch occupies.
        public var totalSize: Int { RecordBatch.lengthPrefixSize + Int(batchLength) }
        /// Offset of the last record.
        public var lastOffset: Int64 { baseOffset + Int64(lastOffsetDelta) }
        /// Offset right after the last record.
        public var nextOffset: Int64 { lastOffset + 1 }

        /// The header's 57 bytes, `crc` as it stands.
        func encoded() -> [UInt8] {
            var writer = WireWriter(capacity: RecordBatch.headerSize)
            writer.write(baseOffset)
            writer.write(batchLength)
            writer.write(magic)
            writer.write(crc)
            writer.write(attributes)
            writer.write(lastOffsetDelta)
            writer.write(firstTimestamp)
            writer.write(maxTimestamp)
            writer.write(producerID)
            writer.write(producerEpoch)
            writer.write(baseSequence)
            writer.write(recordCount)
            return writer.bytes
        }
    }

    /// Reads the fixed header at the start of `bytes`. Checks only that the header fits and the
    /// magic byte is known; use ``validate(_:maxRecordBytes:)`` before trusting the rest.
    public static func readHeader(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> Header {
        var reader = WireReader(bytes, errorCode: .corruptBatch)
        guard bytes.count >= headerSize else {
            throw WireError.corrupt("batch header needs \(headerSize) bytes, got \(bytes.count)")
        }
        let header = Header(
            baseOffset: try reader.read(),
            batchLength: try reader.read(),
            magic: try reader.read(),
            crc: try reader.read(),
            attributes: try reader.read(),
            lastOffsetDelta: try reader.read(),
            firstTimestamp: try reader.read(),
            maxTimestamp: try reader.read(),
            producerID: try reader.read(),
            producerEpoch: try reader.read(),
            baseSequence: try reader.read(),
            recordCount: try reader.read()
        )
        guard header.magic == magic else {
            throw WireError(.unsupportedVersion, "record batch magic \(header.magic), this build reads \(magic)")
        }
        guard Int(header.batchLength) >= headerSize - lengthPrefixSize else {
            throw WireError.corrupt("batch length \(header.batchLength) is shorter than its header")
        }
        // So that lastOffset and nextOffset never overflow (a stamped base offset near Int64.max).
        guard header.baseOffset <= Int64.max - Int64(header.lastOffsetDelta) - 1 else {
            throw WireError.corrupt("base offset \(header.baseOffset) leaves no room for \(header.lastOffsetDelta) more offsets")
        }
        return header
    }

    /// The CRC-32C of a batch's checksummed region as it is now (compare with ``Header/crc``).
    public static func computeChecksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        precondition(bytes.count >= checksumStart)
        return spool_crc32c(0, bytes.baseAddress! + checksumStart, bytes.count - checksumStart)
    }

    /// Checks one whole batch and returns its header: the length, the checksum (before anything
    /// else is trusted), then every record's structure, then the header fields the records can
    /// confirm: `attributes` 0, `recordCount` and `lastOffsetDelta` against the records found
    /// (``ErrorCode/inconsistentBatch``, details `field` = the field's byte offset) and, with
    /// `allowingCompacted` (readers of a log; a broker refuses it in a produced batch), a
    /// compacted batch: increasing offset deltas up to `lastOffsetDelta`, any count. With
    /// `checkingTimestamps` (what a broker asks of a produced batch), `firstTimestamp` equal to
    /// the first record's and `maxTimestamp` to the largest: time lookups rely on them. Stored
    /// batches of earlier versions may differ there, so readers of a log leave it off. Other
    /// failures are ``ErrorCode/corruptBatch``; a record over `maxRecordBytes` is
    /// ``ErrorCode/recordTooLarge``. Never traps on hostile input. `onKey` gets the offset delta
    /// and key of each keyed record as it is read (valid only during the call); on a failure it
    /// may have seen some of them.
    @discardableResult
    public static func validate(_ bytes: UnsafeRawBufferPointer, maxRecordBytes: Int = .max, checkingTimestamps: Bool = false,
                                allowingCompacted: Bool = true, onKey: (_ offsetDelta: UInt32, _ key: UnsafeRawBufferPointer) -> Void = { _, _ in }) throws(WireError) -> Header {
        let header = try readHeader(bytes)
        guard header.totalSize == bytes.count else {
            throw WireError.corrupt("batch length says \(header.totalSize) bytes, frame has \(bytes.count)")
        }
        let actual = computeChecksum(bytes)
        guard actual == header.crc else {
            throw WireError.corrupt("checksum mismatch (stored \(hex(header.crc)), computed \(hex(actual)))")
        }
        let isCompacted = allowingCompacted && header.attributes == compactedAttribute
        guard header.attributes == 0 || isCompacted else {
            throw inconsistent(.attributes, header.attributes == compactedAttribute
                               ? "attributes say the batch was compacted; only the broker's log cleaner writes such batches"
                               : "attributes \(header.attributes) say the records are compressed; v1 has no compression")
        }
        var reader = WireReader(UnsafeRawBufferPointer(rebasing: bytes[headerSize...]), errorCode: .corruptBatch)
        var count: Int64 = 0
        var firstDelta: Int64 = 0
        var largest = Int64.min
        var lastDelta: Int64 = -1
        while !reader.isAtEnd {
            let index = count
            let length = try reader.readVarint()
            guard length <= UInt64(reader.remaining) else {
                throw WireError.corrupt("record \(index) length \(length) exceeds the batch")
            }
            guard length <= UInt64(maxRecordBytes) else {
                throw WireError(.recordTooLarge, "record \(index) is \(length) bytes; the limit is \(maxRecordBytes)")
            }
            var record = WireReader(try reader.readRaw(count: Int(length)), errorCode: .corruptBatch)
            _ = try record.read(UInt8.self)
            let timestampDelta = try record.readZigZag()
            if index == 0 { firstDelta = timestampDelta }
            largest = max(largest, header.firstTimestamp &+ timestampDelta)
            let offsetDelta = try record.readZigZag()
            guard isCompacted ? offsetDelta > lastDelta && offsetDelta <= Int64(header.lastOffsetDelta) : offsetDelta == index else {
                throw WireError.corrupt(isCompacted ? "record \(index) has offset delta \(offsetDelta), not above \(lastDelta) and at most \(header.lastOffsetDelta)"
                                                    : "record \(index) has a non-dense offset delta")
            }
            lastDelta = offsetDelta
            let keyLength = try record.readZigZag()
            if keyLength != -1 {
                let key = try record.readRaw(count: try checkedLength(keyLength))
                onKey(UInt32(truncatingIfNeeded: offsetDelta), key)
            }
            _ = try record.readRaw(count: try checkedLength(try record.readZigZag()))
            let headerCount = try record.readVarint()
            guard headerCount <= UInt64(record.remaining) else { throw WireError.corrupt("record \(index) header count too large") }
            for _ in 0..<headerCount {
                let name = try record.readRaw(count: try checkedLength(try record.readZigZag()))
                guard String(validating: name, as: UTF8.self) != nil else {
                    throw WireError.corrupt("record \(index) has a header name that is not UTF-8")
                }
                _ = try record.readRaw(count: try checkedLength(try record.readZigZag()))
            }
            try record.expectEnd("record \(index)")
            count += 1
        }
        guard count >= 1 || isCompacted else { throw WireError.corrupt("a batch needs at least one record") }
        guard Int64(header.recordCount) == count else {
            throw inconsistent(.recordCount, "recordCount says \(header.recordCount) records, the batch holds \(count)")
        }
        guard Int64(header.lastOffsetDelta) == count - 1 || isCompacted else {
            throw inconsistent(.lastOffsetDelta, "lastOffsetDelta is \(header.lastOffsetDelta); \(count) records end at delta \(count - 1)")
        }
        if checkingTimestamps && count > 0 {
            guard firstDelta == 0 else {
                throw inconsistent(.firstTimestamp, "firstTimestamp \(header.firstTimestamp) is not the first record's timestamp "
                                   + "\(header.firstTimestamp &+ firstDelta)")
            }
            guard header.maxTimestamp == largest else {
                throw inconsistent(.maxTimestamp, "maxTimestamp \(header.maxTimestamp) is not the largest record timestamp \(largest)")
            }
        }
        return header
    }

    /// The header fields ``validate(_:maxRecordBytes:checkingTimestamps:)`` checks against the
    /// records, by byte offset (the `field` detail of ``ErrorCode/inconsistentBatch``).
    public enum CheckedField: Int64, Sendable {
        case attributes = 17
        case lastOffsetDelta = 19
        case firstTimestamp = 23
        case maxTimestamp = 31
        case recordCount = 53
    }

    private static func inconsistent(_ field: CheckedField, _ message: String) -> WireError {
        WireError(.inconsistentBatch, "the batch header disagrees with its records: \(message)", details: ["field": field.rawValue])
    }

    /// Decodes every record of one whole batch, with absolute offsets. Call ``validate(_:maxRecordBytes:)``
    /// first on untrusted bytes; this still throws rather than trap on a bad batch.
    public static func records(in bytes: UnsafeRawBufferPointer) throws(WireError) -> [Record] {
        let header = try readHeader(bytes)
        guard header.totalSize <= bytes.count else { throw WireError.corrupt("batch is truncated") }
        var reader = WireReader(UnsafeRawBufferPointer(rebasing: bytes[headerSize..<header.totalSize]), errorCode: .corruptBatch)
        var records: [Record] = []
        records.reserveCapacity(Int(min(header.recordCount, 1 << 16)))
        for _ in 0..<header.recordCount {
            let length = try reader.readVarint()
            guard length <= UInt64(reader.remaining) else { throw WireError.corrupt("record length exceeds the batch") }
            var record = WireReader(try reader.readRaw(count: Int(length)), errorCode: .corruptBatch)
            _ = try record.read(UInt8.self)
            let timestampDelta = try record.readZigZag()
            let offsetDelta = try record.readZigZag()
            let keyLength = try record.readZigZag()
            let key = keyLength == -1 ? nil : Array(try record.readRaw(count: try checkedLength(keyLength)))
            let value = Array(try record.readRaw(count: try checkedLength(try record.readZigZag())))
            let headerCount = try record.readVarint()
            guard headerCount <= UInt64(record.remaining) else { throw WireError.corrupt("header count too large") }
            var headers: [RecordHeader] = []
            headers.reserveCapacity(Int(headerCount))
            for _ in 0..<headerCount {
                let nameBytes = try record.readRaw(count: try checkedLength(try record.readZigZag()))
                guard let name = String(validating: nameBytes, as: UTF8.self) else {
                    throw WireError.corrupt("header name is not UTF-8")
                }
                headers.append(RecordHeader(name: name, value: Array(try record.readRaw(count: try checkedLength(try record.readZigZag())))))
            }
            records.append(Record(
                offset: header.baseOffset &+ offsetDelta,
                timestamp: header.firstTimestamp &+ timestampDelta,
                key: key, value: value, headers: headers))
        }
        return records
    }

    /// Calls `body` with the offset delta and key of every keyed record of one whole batch, in
    /// order, without copying (the key bytes are valid only during the call). Reads only what
    /// locating keys needs; call ``validate(_:maxRecordBytes:checkingTimestamps:)`` first on
    /// untrusted bytes. Throws rather than trap on a bad batch.
    public static func forEachKey(in bytes: UnsafeRawBufferPointer,
                                  _ body: (_ offsetDelta: UInt32, _ key: UnsafeRawBufferPointer) -> Void) throws(WireError) {
        try forEachRecord(in: bytes) { record in
            if let key = record.key { body(UInt32(truncatingIfNeeded: record.offsetDelta), key) }
        }
    }

    /// One record of a batch as encoded: what the log cleaner needs to decide whether to keep it
    /// and to copy it unchanged. The buffers are valid only during the call that gives them.
    public struct EncodedRecord {
        /// The whole record, its length prefix included.
        public let bytes: UnsafeRawBufferPointer
        /// Its offset minus the batch's base offset.
        public let offsetDelta: Int64
        /// Its timestamp minus the batch's `firstTimestamp`.
        public let timestampDelta: Int64
        /// Its key, nil for none.
        public let key: UnsafeRawBufferPointer?
        /// Whether its value is empty: in a compacted topic, a tombstone (the key's deletion).
        public let hasEmptyValue: Bool
    }

    /// Calls `body` with every record of one whole batch, in order, without copying. Reads only
    /// the fields of ``EncodedRecord``; call ``validate(_:maxRecordBytes:checkingTimestamps:allowingCompacted:onKey:)``
    /// first on untrusted bytes. Throws rather than trap on a bad batch.
    public static func forEachRecord(in bytes: UnsafeRawBufferPointer, _ body: (EncodedRecord) -> Void) throws(WireError) {
        let header = try readHeader(bytes)
        guard header.totalSize <= bytes.count else { throw WireError.corrupt("batch is truncated") }
        let records = UnsafeRawBufferPointer(rebasing: bytes[headerSize..<header.totalSize])
        var reader = WireReader(records, errorCode: .corruptBatch)
        for _ in 0..<header.recordCount {
            let start = reader.position
            let length = try reader.readVarint()
            guard length <= UInt64(reader.remaining) else { throw WireError.corrupt("record length exceeds the batch") }
            var record = WireReader(try reader.readRaw(count: Int(length)), errorCode: .corruptBatch)
            _ = try record.read(UInt8.self)
            let timestampDelta = try record.readZigZag()
            let offsetDelta = try record.readZigZag()
            let keyLength = try record.readZigZag()
            let key = keyLength == -1 ? nil : try record.readRaw(count: try checkedLength(keyLength))
            let valueLength = try checkedLength(try record.readZigZag())
            body(EncodedRecord(bytes: UnsafeRawBufferPointer(rebasing: records[start..<reader.position]), offsetDelta: offsetDelta,
                               timestampDelta: timestampDelta, key: key, hasEmptyValue: valueLength == 0))
        }
    }

    /// A compacted batch (see the format above): `header`'s offsets, timestamps and producer
    /// fields, the compacted attribute, and `records` (whole encoded records of the original
    /// batch, in order, `recordCount` of them, possibly none), with its length and checksum.
    public static func compacted(_ header: Header, recordCount: UInt32, records: [UInt8]) -> [UInt8] {
        var header = header
        header.attributes |= compactedAttribute
        header.recordCount = recordCount
        header.batchLength = UInt32(headerSize - lengthPrefixSize + records.count)
        var batch = header.encoded()
        batch += records
        let crc = batch.withUnsafeBytes { computeChecksum($0) }
        withUnsafeBytes(of: crc.littleEndian) { batch.replaceSubrange(crcOffset..<crcOffset + 4, with: $0) }
        return batch
    }

    private static func checkedLength(_ length: Int64) throws(WireError) -> Int {
        guard length >= 0, length <= Int64(Int32.max) else { throw WireError.corrupt("negative or huge length \(length)") }
        return Int(length)
    }

    private static func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }
}
