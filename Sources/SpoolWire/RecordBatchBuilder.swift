/// Builds one record batch (format in ``RecordBatch``) from records appended in order.
///
/// The builder writes records straight into the final buffer; ``finish()`` fills in the
/// header and checksum. It is a value type: copy it to branch, or reuse after `finish` by
/// creating a new one.
public struct RecordBatchBuilder: Sendable {
    private var writer: WireWriter
    /// The first record's timestamp, which the others are stored relative to.
    private var firstTimestamp: Int64 = 0
    private var maxTimestamp = Int64.min
    /// Number of records appended.
    public private(set) var count = 0

    /// Idempotence fields stamped into the header; -1 when unused.
    public var producerID: Int64 = -1
    /// Idempotence epoch; -1 when unused.
    public var producerEpoch: Int16 = -1
    /// Sequence of the first record; -1 when unused.
    public var baseSequence: Int32 = -1

    /// Starts an empty batch with room for `capacity` bytes. The first record's timestamp becomes
    /// the batch's `firstTimestamp`, the largest its `maxTimestamp`, so the header always agrees
    /// with the records (as a broker checks).
    public init(capacity: Int = 16 * 1024) {
        writer = WireWriter(capacity: max(capacity, RecordBatch.headerSize))
        writer.writeRaw(repeatElement(0, count: RecordBatch.headerSize))
    }

    /// Bytes the batch occupies so far (header included).
    public var byteCount: Int { writer.bytes.count }

    /// Appends one record; its offset delta is its position in the batch.
    public mutating func append(timestamp: Int64, key: [UInt8]?, value: [UInt8], headers: [RecordHeader] = []) {
        if count == 0 { firstTimestamp = timestamp }
        let timestampDelta = timestamp &- firstTimestamp
        let offsetDelta = Int64(count)
        let length = Self.recordLength(timestampDelta: timestampDelta, offsetDelta: offsetDelta, key: key, value: value, headers: headers)
        writer.writeVarint(UInt64(length))
        writer.write(UInt8(0))
        writer.writeZigZag(timestampDelta)
        writer.writeZigZag(offsetDelta)
        if let key {
            writer.writeZigZag(Int64(key.count))
            writer.writeRaw(key)
        } else {
            writer.writeZigZag(-1)
        }
        writer.writeZigZag(Int64(value.count))
        writer.writeRaw(value)
        writer.writeVarint(UInt64(headers.count))
        for header in headers {
            writer.writeZigZag(Int64(header.name.utf8.count))
            writer.writeRaw(header.name.utf8)
            writer.writeZigZag(Int64(header.value.count))
            writer.writeRaw(header.value)
        }
        maxTimestamp = max(maxTimestamp, timestamp)
        count += 1
    }

    /// Bytes of one encoded record after its length varint (see ``RecordBatch`` for the layout).
    public static func recordLength(timestampDelta: Int64, offsetDelta: Int64, key: [UInt8]?, value: [UInt8],
                                    headers: [RecordHeader]) -> Int {
        var length = 1 + WireWriter.zigZagSize(timestampDelta) + WireWriter.zigZagSize(offsetDelta)
        length += key.map { WireWriter.zigZagSize(Int64($0.count)) + $0.count } ?? WireWriter.zigZagSize(-1)
        length += WireWriter.zigZagSize(Int64(value.count)) + value.count
        length += WireWriter.varintSize(UInt64(headers.count))
        for header in headers {
            let nameLength = header.name.utf8.count
            length += WireWriter.zigZagSize(Int64(nameLength)) + nameLength
            length += WireWriter.zigZagSize(Int64(header.value.count)) + header.value.count
        }
        return length
    }

    /// Appends `record`, ignoring its offset.
    public mutating func append(_ record: Record) {
        append(timestamp: record.timestamp, key: record.key, value: record.value, headers: record.headers)
    }

    /// Fills in the header and checksum and returns the finished batch (base offset 0).
    /// A batch needs at least one record.
    public func finish() -> [UInt8] {
        precondition(count > 0, "a record batch needs at least one record")
        var out = writer
        let header = RecordBatch.Header(
            baseOffset: 0, batchLength: UInt32(out.bytes.count - RecordBatch.lengthPrefixSize), magic: RecordBatch.magic, crc: 0,
            attributes: 0, lastOffsetDelta: UInt32(count - 1), firstTimestamp: firstTimestamp, maxTimestamp: maxTimestamp,
            producerID: producerID, producerEpoch: producerEpoch, baseSequence: baseSequence, recordCount: UInt32(count)).encoded()
        for (index, byte) in header.enumerated() { out.overwrite(byte, at: index) }
        let crc = out.bytes.withUnsafeBytes { RecordBatch.computeChecksum($0) }
        out.overwrite(crc, at: RecordBatch.crcOffset)
        return out.bytes
    }
}
