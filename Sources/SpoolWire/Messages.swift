/// What a produce acknowledgement promises about the appended batch.
public struct Durability: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Written to the page cache; no sync is scheduled (`fsync: never`).
    public static let pageCache = Durability(rawValue: 0)
    /// Written to the page cache; a sync follows within the topic's interval (`fsync: interval`).
    public static let syncScheduled = Durability(rawValue: 1)
    /// On disk: an fsync covering the batch completed before the reply (`fsync: always`).
    public static let onDisk = Durability(rawValue: 2)

    public var description: String {
        switch self {
        case .pageCache: "page cache"
        case .syncScheduled: "sync scheduled"
        case .onDisk: "on disk"
        default: "durability \(rawValue)"
        }
    }
}

/// Appends one record batch to a partition. Frames: header, this body, the batch
/// (``RecordBatch`` format, base offset 0). Replied to with ``ProduceResponse``.
public struct ProduceRequest: WireMessage, Hashable {
    public static let opCode = OpCode.produce
    /// Target topic.
    public var topic: String
    /// Target partition, from 0.
    public var partition: Int32
    /// Append only if this holds (a conditional append); nil: always append. Encoded after
    /// `partition` as u8 1, bytes key, i64 lastOffset; absent in an unconditional produce.
    public var condition: KeyCondition?

    public init(topic: String, partition: Int32, condition: KeyCondition? = nil) {
        self.topic = topic
        self.partition = partition
        self.condition = condition
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(topic)
        writer.write(partition)
        if let condition {
            writer.write(UInt8(1))
            writer.write(bytes: condition.key)
            writer.write(condition.lastOffset)
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        topic = try reader.readString()
        partition = try reader.read()
        if reader.isAtEnd {
            condition = nil
        } else {
            guard try reader.read(UInt8.self) == 1 else { throw WireError.malformed("produce condition flag must be 1") }
            condition = KeyCondition(key: try reader.readBytes(), lastOffset: try reader.read())
            guard condition!.lastOffset >= -1 else { throw WireError.malformed("produce condition last offset \(condition!.lastOffset) is below -1") }
        }
    }
}

/// The condition of a conditional append: the last record of `key` in the partition is at
/// `lastOffset`, or the key has no record when it is -1 (an event store's expected version).
/// The broker checks it and appends in one step; otherwise it refuses the batch with
/// ``ErrorCode/keyConflict``, whose detail `lastOffset` is the key's current last offset.
public struct KeyCondition: Hashable, Sendable {
    /// The key whose last offset is checked (usually the key of the batch's records).
    public var key: [UInt8]
    /// The expected offset of the key's last record; -1: the key has no record yet.
    public var lastOffset: Int64

    public init(key: [UInt8], lastOffset: Int64) {
        self.key = key
        self.lastOffset = lastOffset
    }
}

/// The acknowledgement of a produce: where the batch landed and how durable it is.
public struct ProduceResponse: WireMessage, Hashable {
    public static let opCode = OpCode.produce
    /// Partition the batch was appended to.
    public var partition: Int32
    /// Offset of the batch's first record.
    public var baseOffset: Int64
    /// What the acknowledgement guarantees.
    public var durability: Durability

    public init(partition: Int32, baseOffset: Int64, durability: Durability) {
        self.partition = partition
        self.baseOffset = baseOffset
        self.durability = durability
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(partition)
        writer.write(baseOffset)
        writer.write(durability.rawValue)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        partition = try reader.read()
        baseOffset = try reader.read()
        durability = Durability(rawValue: try reader.read())
    }
}

/// Reads batches of a partition from `offset`. If fewer than `minBytes` are available the broker
/// parks the request until enough arrive or `maxWaitMilliseconds` pass (long poll).
/// Replied to with ``FetchResponse``.
public struct FetchRequest: WireMessage, Hashable {
    public static let opCode = OpCode.fetch
    /// Topic to read.
    public var topic: String
    /// Partition to read.
    public var partition: Int32
    /// First offset wanted. The reply may start with the batch that contains it.
    public var offset: Int64
    /// Longest time the broker may hold the request waiting for data.
    public var maxWaitMilliseconds: UInt32
    /// Bytes that must be available before the broker answers early; 1 = any data.
    public var minBytes: UInt32
    /// Soft cap on the reply's record bytes; at least one whole batch is sent even if larger.
    public var maxBytes: UInt32

    public init(topic: String, partition: Int32, offset: Int64, maxWaitMilliseconds: UInt32 = 0,
                minBytes: UInt32 = 1, maxBytes: UInt32 = 1 << 20) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.maxWaitMilliseconds = maxWaitMilliseconds
        self.minBytes = minBytes
        self.maxBytes = maxBytes
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(topic)
        writer.write(partition)
        writer.write(offset)
        writer.write(maxWaitMilliseconds)
        writer.write(minBytes)
        writer.write(maxBytes)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        topic = try reader.readString()
        partition = try reader.read()
        offset = try reader.read()
        maxWaitMilliseconds = try reader.read()
        minBytes = try reader.read()
        maxBytes = try reader.read()
    }
}

/// A fetch reply. Frames: header, this body, then one frame of zero or more whole batches
/// (the first may begin before the requested offset; skip records below it).
public struct FetchResponse: WireMessage, Hashable {
    public static let opCode = OpCode.fetch
    /// Partition read.
    public var partition: Int32
    /// Earliest offset still in the log.
    public var logStartOffset: Int64
    /// The offset after the last record visible to consumers (under `fsync: always`, the last synced one).
    public var logEndOffset: Int64

    public init(partition: Int32, logStartOffset: Int64, logEndOffset: Int64) {
        self.partition = partition
        self.logStartOffset = logStartOffset
        self.logEndOffset = logEndOffset
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(partition)
        writer.write(logStartOffset)
        writer.write(logEndOffset)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        partition = try reader.read()
        logStartOffset = try reader.read()
        logEndOffset = try reader.read()
    }
}

/// Which offset of a partition to look up.
public struct OffsetSpec: RawRepresentable, Hashable, Sendable {
    public let rawValue: Int64
    public init(rawValue: Int64) { self.rawValue = rawValue }

    /// The first offset still in the log.
    public static let earliest = OffsetSpec(rawValue: -2)
    /// The offset the next record will get (visible end of the log).
    public static let latest = OffsetSpec(rawValue: -1)
    /// The first offset whose record timestamp is at or after `milliseconds` since the epoch
    /// (the latest offset if there is none).
    public static func timestamp(_ milliseconds: Int64) -> OffsetSpec { OffsetSpec(rawValue: max(0, milliseconds)) }
}

/// Looks up one offset of a partition. Replied to with ``ListOffsetsResponse``.
public struct ListOffsetsRequest: WireMessage, Hashable {
    public static let opCode = OpCode.listOffsets
    /// Topic to look in.
    public var topic: String
    /// Partition to look in.
    public var partition: Int32
    /// Which offset.
    public var spec: OffsetSpec

    public init(topic: String, partition: Int32, spec: OffsetSpec) {
        self.topic = topic
        self.partition = partition
        self.spec = spec
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(topic)
        writer.write(partition)
        writer.write(spec.rawValue)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        topic = try reader.readString()
        partition = try reader.read()
        spec = OffsetSpec(rawValue: try reader.read())
        guard spec.rawValue >= -2 else { throw WireError(.invalidRequest, "offset spec \(spec.rawValue) is not -2, -1 or a timestamp") }
    }
}

/// The offset found by a ``ListOffsetsRequest``.
public struct ListOffsetsResponse: WireMessage, Hashable {
    public static let opCode = OpCode.listOffsets
    /// Partition looked in.
    public var partition: Int32
    /// The offset found.
    public var offset: Int64

    public init(partition: Int32, offset: Int64) {
        self.partition = partition
        self.offset = offset
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(partition)
        writer.write(offset)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        partition = try reader.read()
        offset = try reader.read()
    }
}

/// Describes topics; an empty list means every topic. Replied to with ``MetadataResponse``.
public struct MetadataRequest: WireMessage, Hashable {
    public static let opCode = OpCode.metadata
    /// Topics to describe; empty for all.
    public var topics: [String]
    /// Create the named topics that do not exist, where the broker auto-creates topics and the
    /// client may produce to them (what a producer asks before its first record); false never creates.
    public var allowAutoCreation: Bool

    public init(topics: [String] = [], allowAutoCreation: Bool = false) {
        self.topics = topics
        self.allowAutoCreation = allowAutoCreation
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(array: topics) { $0.write($1) }
        writer.write(allowAutoCreation)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        let count = try reader.readCount(minimumElementSize: 2)
        topics = []
        for _ in 0..<count { topics.append(try reader.readString()) }
        allowAutoCreation = try reader.readBool()
    }
}

/// The broker's answer to a ``MetadataRequest``.
public struct MetadataResponse: WireMessage, Hashable {
    public static let opCode = OpCode.metadata

    /// One partition's offset range.
    public struct Partition: Hashable, Sendable {
        /// Partition number.
        public var partition: Int32
        /// Earliest offset in the log.
        public var logStartOffset: Int64
        /// Offset after the last visible record.
        public var logEndOffset: Int64

        public init(partition: Int32, logStartOffset: Int64, logEndOffset: Int64) {
            self.partition = partition
            self.logStartOffset = logStartOffset
            self.logEndOffset = logEndOffset
        }
    }

    /// One topic, or the error that prevented describing it (an unknown topic, say).
    public struct Topic: Hashable, Sendable {
        /// Topic name as asked.
        public var name: String
        /// ``ErrorCode/none`` or why this topic is not described.
        public var errorCode: ErrorCode
        /// Partitions in order; empty on error.
        public var partitions: [Partition]

        public init(name: String, errorCode: ErrorCode = .none, partitions: [Partition]) {
            self.name = name
            self.errorCode = errorCode
            self.partitions = partitions
        }
    }

    /// Version string of the broker build.
    public var brokerVersion: String
    /// The topics described.
    public var topics: [Topic]

    public init(brokerVersion: String, topics: [Topic]) {
        self.brokerVersion = brokerVersion
        self.topics = topics
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(brokerVersion)
        writer.write(array: topics) { writer, topic in
            writer.write(topic.name)
            writer.write(topic.errorCode.rawValue)
            writer.write(array: topic.partitions) { writer, partition in
                writer.write(partition.partition)
                writer.write(partition.logStartOffset)
                writer.write(partition.logEndOffset)
            }
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        brokerVersion = try reader.readString()
        topics = []
        for _ in 0..<(try reader.readCount(minimumElementSize: 8)) {
            let name = try reader.readString()
            let errorCode = ErrorCode(rawValue: try reader.read())
            var partitions: [Partition] = []
            for _ in 0..<(try reader.readCount(minimumElementSize: 20)) {
                partitions.append(Partition(partition: try reader.read(), logStartOffset: try reader.read(),
                                            logEndOffset: try reader.read()))
            }
            topics.append(Topic(name: name, errorCode: errorCode, partitions: partitions))
        }
    }
}

/// Creates a topic. Replied to with ``CreateTopicResponse``, ``ErrorCode/topicAlreadyExists``,
/// or ``ErrorCode/invalidRequest`` naming a bad setting.
///
/// ```
/// name        string
/// partitions  i32
/// settings    u32 count, then (key string, value string) pairs sorted by key
/// ```
public struct CreateTopicRequest: WireMessage, Hashable {
    public static let opCode = OpCode.createTopic
    /// Name of the new topic (see ``TopicName``).
    public var name: String
    /// Number of partitions, at least 1.
    public var partitions: Int32
    /// Settings of this topic that override the broker's defaults, such as `retention.ms` or
    /// `fsync` (the keys of `broker-config/spoold.yaml` that a topic may set).
    public var settings: [String: String]

    public init(name: String, partitions: Int32 = 1, settings: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.settings = settings
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(name)
        writer.write(partitions)
        writer.write(settings: settings)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        name = try reader.readString()
        partitions = try reader.read()
        settings = try reader.readSettings(of: "create topic")
    }
}

/// Confirms a created topic.
public struct CreateTopicResponse: WireMessage, Hashable {
    public static let opCode = OpCode.createTopic
    /// Name of the topic.
    public var name: String
    /// Its partition count.
    public var partitions: Int32

    public init(name: String, partitions: Int32) {
        self.name = name
        self.partitions = partitions
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(name)
        writer.write(partitions)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        name = try reader.readString()
        partitions = try reader.read()
    }
}

/// The body of any reply whose header carries a non-zero ``ErrorCode``.
public struct ErrorResponse: Hashable, Sendable {
    /// One line saying what was wrong.
    public var message: String
    /// Numeric facts for recovery, sorted by name on the wire.
    public var details: [String: Int64]

    public init(message: String, details: [String: Int64] = [:]) {
        self.message = message
        self.details = details
    }

    /// Builds the body for `error`.
    public init(_ error: WireError) { self.init(message: error.message, details: error.details) }

    /// The encoded body frame.
    public func encoded() -> [UInt8] {
        var writer = WireWriter()
        // At most 1024 bytes, cut on a scalar boundary (a cut inside one would not be a String).
        var end = message.utf8.index(message.utf8.startIndex, offsetBy: 1024, limitedBy: message.utf8.endIndex) ?? message.utf8.endIndex
        while end != message.utf8.endIndex, UTF8.isContinuation(message.utf8[end]) { end = message.utf8.index(before: end) }
        writer.write(String(message.utf8[..<end])!)
        writer.write(array: details.sorted { $0.key < $1.key }) { writer, entry in
            writer.write(entry.key)
            writer.write(entry.value)
        }
        return writer.bytes
    }

    /// Decodes an error body; any malformation is reported as such rather than thrown away.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> ErrorResponse {
        var reader = WireReader(bytes)
        let message = try reader.readString()
        var details: [String: Int64] = [:]
        for _ in 0..<(try reader.readCount(minimumElementSize: 10)) {
            details[try reader.readString()] = try reader.read()
        }
        try reader.expectEnd("error body")
        return ErrorResponse(message: message, details: details)
    }

    /// The error as a ``WireError`` with `code`.
    public func error(code: ErrorCode) -> WireError { WireError(code, message, details: details) }
}
