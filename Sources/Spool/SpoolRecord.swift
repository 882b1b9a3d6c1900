@_exported import struct SpoolWire.RecordHeader
@_exported import struct SpoolWire.Durability
@_exported import struct SpoolWire.OffsetSpec
@_exported import struct SpoolWire.TopicPartition
@_exported import struct SpoolWire.CommittedOffset
@_exported import struct SpoolWire.GroupAssignment
@_exported import struct SpoolWire.GroupState
@_exported import struct ZeroMQ.CurveKeyPair
@_exported import struct ZeroMQ.KeyFileError

/// A record read from a topic partition.
public struct SpoolRecord: Hashable, Sendable {
    /// The topic it was read from.
    public var topic: String
    /// The partition it was read from.
    public var partition: Int32
    /// Its offset in the partition (dense, from 0).
    public var offset: Int64
    /// Creation time, milliseconds since the Unix epoch.
    public var timestamp: Int64
    /// The key, if one was set.
    public var key: [UInt8]?
    /// The payload.
    public var value: [UInt8]
    /// Headers in the order they were written.
    public var headers: [RecordHeader]

    public init(topic: String, partition: Int32, offset: Int64, timestamp: Int64, key: [UInt8]?, value: [UInt8], headers: [RecordHeader]) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers
    }
}

extension Array where Element == RecordHeader {
    /// The value of the last header named `name` as text (invalid UTF-8 replaced), or nil if
    /// there is none. The last one wins, as for the envelope's headers.
    public func text(of name: String) -> String? {
        last { $0.name == name }.map { String(decoding: $0.value, as: UTF8.self) }
    }
}

/// A record to publish.
public struct OutgoingRecord: Hashable, Sendable {
    /// Routing key; records with the same key go to the same partition.
    public var key: [UInt8]?
    /// The payload.
    public var value: [UInt8]
    /// Headers, kept in order.
    public var headers: [RecordHeader]
    /// Creation time in ms since the epoch; nil means "now".
    public var timestamp: Int64?

    public init(key: [UInt8]? = nil, value: [UInt8], headers: [RecordHeader] = [], timestamp: Int64? = nil) {
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }
}

/// Where a published batch landed.
public struct PublishResult: Hashable, Sendable {
    /// The topic.
    public var topic: String
    /// The partition.
    public var partition: Int32
    /// Offset of the first record of the batch.
    public var baseOffset: Int64
    /// Number of records.
    public var count: Int
    /// What the broker's acknowledgement guarantees.
    public var durability: Durability

    /// Offset of the last record.
    public var lastOffset: Int64 { baseOffset + Int64(count) - 1 }
}

/// Where a record stream starts.
public struct StartPosition: Hashable, Sendable {
    enum Kind: Hashable { case earliest, latest, offset(Int64), timestamp(Int64) }
    let kind: Kind

    /// The first record still in the log.
    public static let earliest = StartPosition(kind: .earliest)
    /// The next record appended after the stream starts.
    public static let latest = StartPosition(kind: .latest)
    /// The record at `offset` (an offset below the log's start is an error).
    public static func offset(_ offset: Int64) -> StartPosition { StartPosition(kind: .offset(offset)) }
    /// The first record created at or after `milliseconds` since the epoch.
    public static func timestamp(_ milliseconds: Int64) -> StartPosition { StartPosition(kind: .timestamp(milliseconds)) }
}

/// One partition's offset range as the broker reports it.
public struct PartitionInfo: Hashable, Sendable {
    /// Partition number.
    public var partition: Int32
    /// First offset still stored.
    public var earliestOffset: Int64
    /// Offset the next record will get (the end visible to consumers).
    public var latestOffset: Int64
}

/// A topic as the broker reports it.
public struct TopicInfo: Hashable, Sendable {
    /// Topic name.
    public var name: String
    /// Its partitions in order.
    public var partitions: [PartitionInfo]
}
