import SpoolWire

/// A topic as the broker describes it: the log settings in force and each partition's extent.
/// The SDK's own type, so that the wire format can change without breaking a user.
public struct TopicDescription: Sendable, Hashable {
    /// One partition's extent on disk.
    public struct Partition: Sendable, Hashable {
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
        /// Why the partition refuses writes now (a full or failing disk: "the disk is full (…)"),
        /// or empty while it accepts them; writes resume by themselves once the cause is gone.
        public var writeError: String
    }

    /// Topic name.
    public var name: String
    /// Every log setting in force (`fsync`, `retention.ms`, … as in `broker-config/spoold.yaml`;
    /// `-1` for unlimited or never): the broker's defaults with the topic's own settings applied.
    public var settings: [String: String]
    /// The settings the topic sets itself (at creation or in the broker's declared topics).
    public var topicSettings: [String: String]
    /// Partitions in order.
    public var partitions: [Partition]

    init(_ response: DescribeTopicResponse) {
        name = response.name
        settings = response.settings
        topicSettings = response.topicSettings
        partitions = response.partitions.map {
            Partition(partition: $0.partition, logStartOffset: $0.logStartOffset, logEndOffset: $0.logEndOffset, sizeBytes: $0.sizeBytes,
                      segmentCount: $0.segmentCount, writeError: $0.writeError)
        }
    }
}

/// A consumer group as the broker lists it.
public struct GroupListing: Sendable, Hashable {
    /// Group name.
    public var name: String
    /// Where it stands (stable, rebalancing, empty, …).
    public var state: GroupState
    /// Live members.
    public var memberCount: Int

    init(_ group: ListGroupsResponse.Group) {
        name = group.name
        state = group.state
        memberCount = Int(group.memberCount)
    }
}

/// A consumer group in detail: its members and their partitions, and per partition the committed
/// offset, the log end and the lag.
public struct GroupDescription: Sendable, Hashable {
    /// A live member and the partitions it holds.
    public struct Member: Sendable, Hashable {
        /// The member's id.
        public var memberID: String
        /// The partitions assigned to it, sorted.
        public var partitions: [TopicPartition]
    }

    /// Where the group stands on one partition.
    public struct PartitionProgress: Sendable, Hashable {
        /// The partition.
        public var partition: TopicPartition
        /// The offset the group committed, or -1 if it never did.
        public var committedOffset: Int64
        /// The partition's visible end, or -1 if the topic is gone.
        public var logEndOffset: Int64
        /// Records between the committed offset (or the log start) and the end.
        public var lag: Int64
    }

    /// Group name.
    public var group: String
    /// Where it stands.
    public var state: GroupState
    /// Its generation.
    public var generation: Int32
    /// Live members, sorted by id.
    public var members: [Member]
    /// Every partition of its topics and every partition it committed, sorted.
    public var partitions: [PartitionProgress]

    init(_ response: DescribeGroupResponse) {
        group = response.group
        state = response.state
        generation = response.generation
        members = response.members.map { Member(memberID: $0.memberID, partitions: $0.partitions) }
        partitions = response.partitions.map {
            PartitionProgress(partition: $0.partition, committedOffset: $0.committedOffset, logEndOffset: $0.logEndOffset, lag: $0.lag)
        }
    }
}
