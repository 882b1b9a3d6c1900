/// Describes one topic: the settings in force, the topic's own overrides, and per partition its
/// offsets and bytes on disk. Replied to with ``DescribeTopicResponse`` or ``ErrorCode/unknownTopic``.
///
/// ```
/// name  string
/// ```
public struct DescribeTopicRequest: WireMessage, Hashable {
    public static let opCode = OpCode.describeTopic
    /// Topic name.
    public var name: String

    public init(name: String) { self.name = name }

    public func encode(into writer: inout WireWriter) { writer.write(name) }
    public init(from reader: inout WireReader) throws(WireError) { name = try reader.readString() }
}

/// A topic described.
///
/// ```
/// name            string
/// settings        u32 count, (key string, value string) sorted by key: every setting in force
/// topicSettings   u32 count, (key string, value string) sorted by key: those the topic sets itself
/// partitions      u32 count, (partition i32, logStart i64, logEnd i64, sizeBytes i64, segments i32,
///                 writeError string: empty while the partition accepts writes)
/// ```
public struct DescribeTopicResponse: WireMessage, Hashable {
    public static let opCode = OpCode.describeTopic

    /// One partition's extent on disk.
    public struct Partition: Hashable, Sendable {
        /// Partition number.
        public var partition: Int32
        /// First offset still stored.
        public var logStartOffset: Int64
        /// Offset after the last visible record.
        public var logEndOffset: Int64
        /// Bytes of its segment files (indexes not counted).
        public var sizeBytes: Int64
        /// Number of segment files.
        public var segmentCount: Int32
        /// Why the partition refuses writes now (its last append or sync failed: "the disk is
        /// full (…)"), or empty while it accepts them. Writes resume by themselves once the
        /// cause is gone; the first one that succeeds clears it.
        public var writeError: String

        public init(partition: Int32, logStartOffset: Int64, logEndOffset: Int64, sizeBytes: Int64, segmentCount: Int32,
                    writeError: String = "") {
            self.partition = partition
            self.logStartOffset = logStartOffset
            self.logEndOffset = logEndOffset
            self.sizeBytes = sizeBytes
            self.segmentCount = segmentCount
            self.writeError = writeError
        }
    }

    /// Topic name.
    public var name: String
    /// Every log setting in force for the topic (`fsync`, `retention.ms`, … as in
    /// `broker-config/spoold.yaml`; `-1` for unlimited or never): the broker's defaults with the
    /// topic's own settings applied.
    public var settings: [String: String]
    /// The settings the topic sets itself (at creation or in the broker's declared topics).
    public var topicSettings: [String: String]
    /// Partitions in order.
    public var partitions: [Partition]

    public init(name: String, settings: [String: String], topicSettings: [String: String], partitions: [Partition]) {
        self.name = name
        self.settings = settings
        self.topicSettings = topicSettings
        self.partitions = partitions
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(name)
        writer.write(settings: settings)
        writer.write(settings: topicSettings)
        writer.write(array: partitions) { writer, partition in
            writer.write(partition.partition)
            writer.write(partition.logStartOffset)
            writer.write(partition.logEndOffset)
            writer.write(partition.sizeBytes)
            writer.write(partition.segmentCount)
            writer.write(partition.writeError)
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        name = try reader.readString()
        settings = try reader.readSettings(of: "describe topic")
        topicSettings = try reader.readSettings(of: "describe topic")
        partitions = []
        for _ in 0..<(try reader.readCount(minimumElementSize: 34)) {
            partitions.append(Partition(partition: try reader.read(), logStartOffset: try reader.read(), logEndOffset: try reader.read(),
                                        sizeBytes: try reader.read(), segmentCount: try reader.read(), writeError: try reader.readString()))
        }
    }
}

/// Deletes a topic: its partitions and their data. Replied to with ``DeleteTopicResponse``,
/// ``ErrorCode/unknownTopic``, or ``ErrorCode/groupNotEmpty`` while a consumer group with live
/// members consumes it.
///
/// ```
/// name  string
/// ```
public struct DeleteTopicRequest: WireMessage, Hashable {
    public static let opCode = OpCode.deleteTopic
    /// Topic name.
    public var name: String

    public init(name: String) { self.name = name }

    public func encode(into writer: inout WireWriter) { writer.write(name) }
    public init(from reader: inout WireReader) throws(WireError) { name = try reader.readString() }
}

/// Confirms a deleted topic.
///
/// ```
/// name        string
/// partitions  i32   how many partitions it had
/// ```
public struct DeleteTopicResponse: WireMessage, Hashable {
    public static let opCode = OpCode.deleteTopic
    /// Name of the deleted topic.
    public var name: String
    /// How many partitions it had.
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

extension WireWriter {
    /// A string map as `u32 count, (key string, value string)` sorted by key: one encoding per map.
    public mutating func write(settings: [String: String]) {
        write(array: settings.sorted { $0.key < $1.key }) { writer, entry in
            writer.write(entry.key)
            writer.write(entry.value)
        }
    }
}

extension WireReader {
    /// A string map written by ``WireWriter/write(settings:)``; keys out of order (or repeated)
    /// are ``ErrorCode/malformedRequest`` naming `message`, so every map has one encoding.
    public mutating func readSettings(of message: String) throws(WireError) -> [String: String] {
        var settings: [String: String] = [:]
        var previousKey: String?
        for _ in 0..<(try readCount(minimumElementSize: 4)) {
            let key = try readString()
            guard previousKey.map({ $0 < key }) ?? true else {
                throw WireError(.malformedRequest, "\(message) settings are not sorted by key: '\(key)' follows '\(previousKey ?? "")'")
            }
            previousKey = key
            settings[key] = try readString()
        }
        return settings
    }
}
