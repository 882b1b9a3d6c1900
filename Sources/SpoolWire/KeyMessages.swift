/// Reads the records of one key from an offset on, found through the broker's key index rather
/// than by scanning the partition. Replied to with ``FetchKeyResponse``.
public struct FetchKeyRequest: WireMessage, Hashable {
    public static let opCode = OpCode.fetchKey
    /// Topic to read.
    public var topic: String
    /// Partition to read (the key's partition).
    public var partition: Int32
    /// The key whose records are wanted.
    public var key: [UInt8]
    /// First offset wanted; records of the key below it are skipped.
    public var offset: Int64
    /// Soft cap on the reply's batch bytes; at least one whole batch is sent even if larger.
    public var maxBytes: UInt32

    public init(topic: String, partition: Int32, key: [UInt8], offset: Int64, maxBytes: UInt32 = 1 << 20) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.offset = offset
        self.maxBytes = maxBytes
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(topic)
        writer.write(partition)
        writer.write(bytes: key)
        writer.write(offset)
        writer.write(maxBytes)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        topic = try reader.readString()
        partition = try reader.read()
        key = try reader.readBytes()
        offset = try reader.read()
        maxBytes = try reader.read()
    }
}

/// A fetch-key reply. Frames: header, this body, then one frame of zero or more whole batches
/// in offset order, each holding at least one record of the key at or after the requested
/// offset (they may hold other keys' records too: skip them, and records below the offset).
public struct FetchKeyResponse: WireMessage, Hashable {
    public static let opCode = OpCode.fetchKey
    /// Partition read.
    public var partition: Int32
    /// Earliest offset still in the log.
    public var logStartOffset: Int64
    /// The offset after the last record visible to consumers.
    public var logEndOffset: Int64
    /// Where the next fetch of the key continues; when it passes ``lastOffset``, the key's
    /// records up to the visible end were all sent.
    public var nextOffset: Int64
    /// The offset of the key's last visible record still stored, -1 if there is none.
    public var lastOffset: Int64

    public init(partition: Int32, logStartOffset: Int64, logEndOffset: Int64, nextOffset: Int64, lastOffset: Int64) {
        self.partition = partition
        self.logStartOffset = logStartOffset
        self.logEndOffset = logEndOffset
        self.nextOffset = nextOffset
        self.lastOffset = lastOffset
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(partition)
        writer.write(logStartOffset)
        writer.write(logEndOffset)
        writer.write(nextOffset)
        writer.write(lastOffset)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        partition = try reader.read()
        logStartOffset = try reader.read()
        logEndOffset = try reader.read()
        nextOffset = try reader.read()
        lastOffset = try reader.read()
    }
}
