/// One partition of a topic, as named on the wire: `topic string, partition i32`.
public struct TopicPartition: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The topic.
    public var topic: String
    /// The partition, from 0.
    public var partition: Int32

    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    /// Topic name first, then partition number.
    public static func < (lhs: TopicPartition, rhs: TopicPartition) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }

    /// "orders/3".
    public var description: String { "\(topic)/\(partition)" }

    /// Smallest encoding: an empty string (2) and a partition (4).
    static let minimumSize = 6

    func encode(into writer: inout WireWriter) {
        writer.write(topic)
        writer.write(partition)
    }

    init(from reader: inout WireReader) throws(WireError) {
        topic = try reader.readString()
        partition = try reader.read()
    }
}

extension WireWriter {
    mutating func write(partitions: [TopicPartition]) {
        write(array: partitions) { writer, partition in partition.encode(into: &writer) }
    }
}

extension WireReader {
    mutating func readPartitions() throws(WireError) -> [TopicPartition] {
        var partitions: [TopicPartition] = []
        for _ in 0..<(try readCount(minimumElementSize: TopicPartition.minimumSize)) {
            partitions.append(try TopicPartition(from: &self))
        }
        return partitions
    }
}

/// Joins a consumer group (or rejoins it with the member id it had). The broker assigns the
/// group's partitions to its members (see ``JoinGroupResponse``) and removes a member that sends
/// no heartbeat for `sessionTimeoutMilliseconds`. Replied to with ``JoinGroupResponse``.
///
/// ```
/// group                       string
/// memberID                    string, empty on a first join
/// sessionTimeoutMilliseconds  u32
/// topics                      u32 count, strings: the topics the member consumes
/// owned                       u32 count, topic partitions the member still holds (on a rejoin)
/// ```
public struct JoinGroupRequest: WireMessage, Hashable {
    public static let opCode = OpCode.joinGroup
    /// Group name (the rules of ``TopicName``).
    public var group: String
    /// The id the member had, or empty to get a new one.
    public var memberID: String
    /// Silence after which the broker removes the member and moves its partitions.
    public var sessionTimeoutMilliseconds: UInt32
    /// Topics to consume.
    public var topics: [String]
    /// Partitions the member still holds (it had them before the broker restarted, say); the
    /// broker gives them to nobody else until the member's heartbeat says it released them.
    public var owned: [TopicPartition]

    public init(group: String, memberID: String = "", sessionTimeoutMilliseconds: UInt32 = 10_000, topics: [String],
                owned: [TopicPartition] = []) {
        self.group = group
        self.memberID = memberID
        self.sessionTimeoutMilliseconds = sessionTimeoutMilliseconds
        self.topics = topics
        self.owned = owned
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(group)
        writer.write(memberID)
        writer.write(sessionTimeoutMilliseconds)
        writer.write(array: topics) { $0.write($1) }
        writer.write(partitions: owned)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        group = try reader.readString()
        memberID = try reader.readString()
        sessionTimeoutMilliseconds = try reader.read()
        topics = []
        for _ in 0..<(try reader.readCount(minimumElementSize: 2)) { topics.append(try reader.readString()) }
        owned = try reader.readPartitions()
    }
}

/// A member's place in its group: its id, the group's generation, and the partitions it may
/// consume now. The same body answers a join and a heartbeat.
///
/// ```
/// memberID                      string
/// generation                    i32, bumped whenever the membership changes
/// heartbeatIntervalMilliseconds u32, how often the member should send a heartbeat
/// assignment                    u32 count, topic partitions, sorted
/// ```
/// The assignment holds only partitions no other member still owns: a partition moving from
/// member A to member B appears in B's assignment once A's heartbeat no longer lists it (or A
/// was removed), so two members never consume one partition at once.
public struct GroupAssignment: Hashable, Sendable {
    /// The member's id, to send with every later group request.
    public var memberID: String
    /// The group's generation; commits must carry it.
    public var generation: Int32
    /// How often the broker wants a heartbeat (a third of the session timeout).
    public var heartbeatIntervalMilliseconds: UInt32
    /// The partitions the member may consume now.
    public var partitions: [TopicPartition]

    public init(memberID: String, generation: Int32, heartbeatIntervalMilliseconds: UInt32, partitions: [TopicPartition]) {
        self.memberID = memberID
        self.generation = generation
        self.heartbeatIntervalMilliseconds = heartbeatIntervalMilliseconds
        self.partitions = partitions
    }

    func encode(into writer: inout WireWriter) {
        writer.write(memberID)
        writer.write(generation)
        writer.write(heartbeatIntervalMilliseconds)
        writer.write(partitions: partitions)
    }

    init(from reader: inout WireReader) throws(WireError) {
        memberID = try reader.readString()
        generation = try reader.read()
        heartbeatIntervalMilliseconds = try reader.read()
        partitions = try reader.readPartitions()
    }
}

/// The reply to a ``JoinGroupRequest``.
public struct JoinGroupResponse: WireMessage, Hashable {
    public static let opCode = OpCode.joinGroup
    /// The member's id, generation and partitions.
    public var assignment: GroupAssignment

    public init(assignment: GroupAssignment) { self.assignment = assignment }

    public func encode(into writer: inout WireWriter) { assignment.encode(into: &writer) }
    public init(from reader: inout WireReader) throws(WireError) { assignment = try GroupAssignment(from: &reader) }
}

/// Keeps a member alive and reports the partitions it still holds; the reply carries the current
/// generation and the member's partitions. A member whose id the broker does not know (removed
/// after its session timed out, or the broker restarted) gets ``ErrorCode/unknownMember`` and
/// must join again. Replied to with ``HeartbeatResponse``.
///
/// ```
/// group       string
/// memberID    string
/// generation  i32, the generation the member works in
/// owned       u32 count, topic partitions it still holds
/// ```
public struct HeartbeatRequest: WireMessage, Hashable {
    public static let opCode = OpCode.heartbeat
    /// Group name.
    public var group: String
    /// The member's id.
    public var memberID: String
    /// The generation of the member's current assignment.
    public var generation: Int32
    /// Partitions the member still holds; any it no longer lists are free for their new owner.
    public var owned: [TopicPartition]

    public init(group: String, memberID: String, generation: Int32, owned: [TopicPartition]) {
        self.group = group
        self.memberID = memberID
        self.generation = generation
        self.owned = owned
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(group)
        writer.write(memberID)
        writer.write(generation)
        writer.write(partitions: owned)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        group = try reader.readString()
        memberID = try reader.readString()
        generation = try reader.read()
        owned = try reader.readPartitions()
    }
}

/// The reply to a ``HeartbeatRequest``.
public struct HeartbeatResponse: WireMessage, Hashable {
    public static let opCode = OpCode.heartbeat
    /// The member's generation and partitions now.
    public var assignment: GroupAssignment

    public init(assignment: GroupAssignment) { self.assignment = assignment }

    public func encode(into writer: inout WireWriter) { assignment.encode(into: &writer) }
    public init(from reader: inout WireReader) throws(WireError) { assignment = try GroupAssignment(from: &reader) }
}

/// Leaves a group at once (its partitions move without waiting for the session timeout).
/// Replied to with an empty ``LeaveGroupResponse``; leaving an unknown member succeeds.
public struct LeaveGroupRequest: WireMessage, Hashable {
    public static let opCode = OpCode.leaveGroup
    /// Group name.
    public var group: String
    /// The member leaving.
    public var memberID: String

    public init(group: String, memberID: String) {
        self.group = group
        self.memberID = memberID
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(group)
        writer.write(memberID)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        group = try reader.readString()
        memberID = try reader.readString()
    }
}

/// Confirms a ``LeaveGroupRequest``; no fields.
public struct LeaveGroupResponse: WireMessage, Hashable {
    public static let opCode = OpCode.leaveGroup
    public init() {}
    public func encode(into writer: inout WireWriter) {}
    public init(from reader: inout WireReader) throws(WireError) {}
}

/// A committed position: the offset of the next record the group will read from a partition,
/// and a free-form metadata string (up to 4 KiB).
public struct CommittedOffset: Hashable, Sendable {
    /// The partition.
    public var partition: TopicPartition
    /// The next offset to read; -1 in a ``FetchOffsetsResponse`` means "nothing committed".
    public var offset: Int64
    /// Whatever the committer wants to keep with the offset.
    public var metadata: String

    public init(partition: TopicPartition, offset: Int64, metadata: String = "") {
        self.partition = partition
        self.offset = offset
        self.metadata = metadata
    }

    /// Smallest encoding: a topic partition, an offset (8) and an empty string (2).
    static let minimumSize = TopicPartition.minimumSize + 10

    func encode(into writer: inout WireWriter) {
        partition.encode(into: &writer)
        writer.write(offset)
        writer.write(metadata)
    }

    init(from reader: inout WireReader) throws(WireError) {
        partition = try TopicPartition(from: &reader)
        offset = try reader.read()
        metadata = try reader.readString()
    }
}

extension WireReader {
    mutating func readCommittedOffsets() throws(WireError) -> [CommittedOffset] {
        var offsets: [CommittedOffset] = []
        for _ in 0..<(try readCount(minimumElementSize: CommittedOffset.minimumSize)) {
            offsets.append(try CommittedOffset(from: &self))
        }
        return offsets
    }
}

/// Commits offsets for a group. A member commits with its id and generation, and only for
/// partitions it owns; a stale generation or a partition it does not own is refused with
/// ``ErrorCode/staleGeneration`` (fencing: a member that lost a partition cannot move its
/// offset). With an empty member id and generation -1 the commit is administrative (resetting
/// a group's offsets) and is accepted only while the group has no members
/// (``ErrorCode/groupNotEmpty`` otherwise). Acknowledged once the commit is on disk, with an
/// empty ``CommitOffsetsResponse``.
///
/// ```
/// group       string
/// memberID    string
/// generation  i32
/// offsets     u32 count, (topic string, partition i32, offset i64, metadata string)
/// ```
public struct CommitOffsetsRequest: WireMessage, Hashable {
    public static let opCode = OpCode.commitOffsets
    /// Group name.
    public var group: String
    /// The committing member, or empty for an administrative commit.
    public var memberID: String
    /// The member's generation, or -1 for an administrative commit.
    public var generation: Int32
    /// The positions to store.
    public var offsets: [CommittedOffset]

    public init(group: String, memberID: String, generation: Int32, offsets: [CommittedOffset]) {
        self.group = group
        self.memberID = memberID
        self.generation = generation
        self.offsets = offsets
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(group)
        writer.write(memberID)
        writer.write(generation)
        writer.write(array: offsets) { writer, offset in offset.encode(into: &writer) }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        group = try reader.readString()
        memberID = try reader.readString()
        generation = try reader.read()
        offsets = try reader.readCommittedOffsets()
    }
}

/// Confirms a ``CommitOffsetsRequest``: every offset in it is stored and synced.
public struct CommitOffsetsResponse: WireMessage, Hashable {
    public static let opCode = OpCode.commitOffsets
    public init() {}
    public func encode(into writer: inout WireWriter) {}
    public init(from reader: inout WireReader) throws(WireError) {}
}

/// Reads a group's committed offsets: for the listed partitions, or every partition it has
/// committed when the list is empty. Replied to with ``FetchOffsetsResponse``.
public struct FetchOffsetsRequest: WireMessage, Hashable {
    public static let opCode = OpCode.fetchOffsets
    /// Group name.
    public var group: String
    /// Partitions to look up; empty for all.
    public var partitions: [TopicPartition]

    public init(group: String, partitions: [TopicPartition] = []) {
        self.group = group
        self.partitions = partitions
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(group)
        writer.write(partitions: partitions)
    }

    public init(from reader: inout WireReader) throws(WireError) {
        group = try reader.readString()
        partitions = try reader.readPartitions()
    }
}

/// A group's committed offsets, sorted by partition; -1 for an asked partition with none.
public struct FetchOffsetsResponse: WireMessage, Hashable {
    public static let opCode = OpCode.fetchOffsets
    /// The offsets.
    public var offsets: [CommittedOffset]

    public init(offsets: [CommittedOffset]) { self.offsets = offsets }

    public func encode(into writer: inout WireWriter) {
        writer.write(array: offsets) { writer, offset in offset.encode(into: &writer) }
    }

    public init(from reader: inout WireReader) throws(WireError) { offsets = try reader.readCommittedOffsets() }
}

/// Lists the groups the broker knows: those with members and those with committed offsets.
/// Replied to with ``ListGroupsResponse``.
public struct ListGroupsRequest: WireMessage, Hashable {
    public static let opCode = OpCode.listGroups
    public init() {}
    public func encode(into writer: inout WireWriter) {}
    public init(from reader: inout WireReader) throws(WireError) {}
}

/// Where a group stands.
public struct GroupState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// No members (it may still have committed offsets).
    public static let empty = GroupState(rawValue: 0)
    /// Every partition is owned by the member it is assigned to.
    public static let stable = GroupState(rawValue: 1)
    /// Some partitions are moving: their old owner has not released them yet.
    public static let rebalancing = GroupState(rawValue: 2)

    public var description: String {
        switch self {
        case .empty: "empty"
        case .stable: "stable"
        case .rebalancing: "rebalancing"
        default: "state \(rawValue)"
        }
    }
}

/// The groups, sorted by name.
public struct ListGroupsResponse: WireMessage, Hashable {
    public static let opCode = OpCode.listGroups

    /// One group in a listing.
    public struct Group: Hashable, Sendable {
        /// Its name.
        public var name: String
        /// Where it stands.
        public var state: GroupState
        /// Its live members.
        public var memberCount: UInt32

        public init(name: String, state: GroupState, memberCount: UInt32) {
            self.name = name
            self.state = state
            self.memberCount = memberCount
        }
    }

    /// The groups.
    public var groups: [Group]

    public init(groups: [Group]) { self.groups = groups }

    public func encode(into writer: inout WireWriter) {
        writer.write(array: groups) { writer, group in
            writer.write(group.name)
            writer.write(group.state.rawValue)
            writer.write(group.memberCount)
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        groups = []
        for _ in 0..<(try reader.readCount(minimumElementSize: 7)) {
            groups.append(Group(name: try reader.readString(), state: GroupState(rawValue: try reader.read()),
                                memberCount: try reader.read()))
        }
    }
}

/// Describes one group: members with their partitions, and per partition its committed offset,
/// log end and lag. Replied to with ``DescribeGroupResponse`` (an unknown group is described as
/// empty with no offsets).
public struct DescribeGroupRequest: WireMessage, Hashable {
    public static let opCode = OpCode.describeGroup
    /// Group name.
    public var group: String

    public init(group: String) { self.group = group }

    public func encode(into writer: inout WireWriter) { writer.write(group) }
    public init(from reader: inout WireReader) throws(WireError) { group = try reader.readString() }
}

/// A group described.
///
/// ```
/// group       string
/// state       u8 (GroupState)
/// generation  i32
/// members     u32 count, (memberID string, partitions: u32 count, topic partitions)
/// partitions  u32 count, (topic partition, committed i64 (-1 none), logEnd i64 (-1 unknown topic), lag i64)
/// ```
public struct DescribeGroupResponse: WireMessage, Hashable {
    public static let opCode = OpCode.describeGroup

    /// A live member and the partitions it holds.
    public struct Member: Hashable, Sendable {
        /// The member's id.
        public var memberID: String
        /// The partitions it consumes now.
        public var partitions: [TopicPartition]

        public init(memberID: String, partitions: [TopicPartition]) {
            self.memberID = memberID
            self.partitions = partitions
        }
    }

    /// Progress of the group on one partition.
    public struct PartitionProgress: Hashable, Sendable {
        /// The partition.
        public var partition: TopicPartition
        /// The committed offset, -1 if none.
        public var committedOffset: Int64
        /// The partition's visible end, -1 if the topic is gone.
        public var logEndOffset: Int64
        /// Records between the committed offset (or the log start when none) and the end.
        public var lag: Int64

        public init(partition: TopicPartition, committedOffset: Int64, logEndOffset: Int64, lag: Int64) {
            self.partition = partition
            self.committedOffset = committedOffset
            self.logEndOffset = logEndOffset
            self.lag = lag
        }
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

    public init(group: String, state: GroupState, generation: Int32, members: [Member], partitions: [PartitionProgress]) {
        self.group = group
        self.state = state
        self.generation = generation
        self.members = members
        self.partitions = partitions
    }

    public func encode(into writer: inout WireWriter) {
        writer.write(group)
        writer.write(state.rawValue)
        writer.write(generation)
        writer.write(array: members) { writer, member in
            writer.write(member.memberID)
            writer.write(partitions: member.partitions)
        }
        writer.write(array: partitions) { writer, progress in
            progress.partition.encode(into: &writer)
            writer.write(progress.committedOffset)
            writer.write(progress.logEndOffset)
            writer.write(progress.lag)
        }
    }

    public init(from reader: inout WireReader) throws(WireError) {
        group = try reader.readString()
        state = GroupState(rawValue: try reader.read())
        generation = try reader.read()
        members = []
        for _ in 0..<(try reader.readCount(minimumElementSize: 6)) {
            members.append(Member(memberID: try reader.readString(), partitions: try reader.readPartitions()))
        }
        partitions = []
        for _ in 0..<(try reader.readCount(minimumElementSize: TopicPartition.minimumSize + 24)) {
            partitions.append(PartitionProgress(partition: try TopicPartition(from: &reader), committedOffset: try reader.read(),
                                                logEndOffset: try reader.read(), lag: try reader.read()))
        }
    }
}
