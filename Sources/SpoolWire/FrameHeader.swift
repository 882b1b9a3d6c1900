/// The first frame of every request and reply (16 bytes, little-endian):
/// ```
/// 0  u8   magic          0x53 ('S'), rejects stray traffic early
/// 1  u8   version        protocol version, 1
/// 2  u8   opCode         the operation (``OpCode``); a reply echoes its request's
/// 3  u8   flags          bit 0: this is a reply
/// 4  u16  errorCode      0 in requests and successful replies (``ErrorCode``)
/// 6  u16  reserved       0
/// 8  u64  correlationID  chosen by the client, echoed by the reply
/// ```
/// Body frames follow; their layout depends on the operation (see ``WireMessage``).
public struct FrameHeader: Hashable, Sendable {
    /// First byte of every header.
    public static let magic: UInt8 = 0x53
    /// The protocol version this build speaks.
    public static let currentVersion: UInt8 = 1
    /// Encoded size in bytes.
    public static let size = 16
    static let replyFlag: UInt8 = 1

    /// Protocol version of the sender.
    public var version: UInt8
    /// The operation.
    public var opCode: OpCode
    /// True in replies.
    public var isReply: Bool
    /// Outcome of a reply.
    public var errorCode: ErrorCode
    /// Matches a reply to its request.
    public var correlationID: UInt64

    public init(version: UInt8 = FrameHeader.currentVersion, opCode: OpCode, isReply: Bool = false,
                errorCode: ErrorCode = .none, correlationID: UInt64) {
        self.version = version
        self.opCode = opCode
        self.isReply = isReply
        self.errorCode = errorCode
        self.correlationID = correlationID
    }

    /// The header of the reply to this request.
    public func reply(errorCode: ErrorCode = .none) -> FrameHeader {
        FrameHeader(opCode: opCode, isReply: true, errorCode: errorCode, correlationID: correlationID)
    }

    /// The 16 encoded bytes.
    public func encoded() -> [UInt8] {
        var writer = WireWriter(capacity: FrameHeader.size)
        writer.write(FrameHeader.magic)
        writer.write(version)
        writer.write(opCode.rawValue)
        writer.write(isReply ? FrameHeader.replyFlag : 0)
        writer.write(errorCode.rawValue)
        writer.write(UInt16(0))
        writer.write(correlationID)
        return writer.bytes
    }

    /// Decodes a header frame. Checks size and magic; a version other than ours is returned as
    /// is so the receiver can answer ``ErrorCode/unsupportedVersion`` with the correlation id.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(WireError) -> FrameHeader {
        guard bytes.count == size else {
            throw WireError.malformed("header frame is \(bytes.count) bytes, expected \(size)")
        }
        var reader = WireReader(bytes)
        guard try reader.read(UInt8.self) == magic else { throw WireError.malformed("header frame has a bad magic byte") }
        let version: UInt8 = try reader.read()
        let opCode = OpCode(rawValue: try reader.read())
        let flags: UInt8 = try reader.read()
        let errorCode = ErrorCode(rawValue: try reader.read())
        _ = try reader.read(UInt16.self)
        return FrameHeader(version: version, opCode: opCode, isReply: flags & replyFlag != 0,
                           errorCode: errorCode, correlationID: try reader.read())
    }
}

/// An operation of the wire protocol. An open set: a peer may send codes this build does not know.
public struct OpCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Append one record batch to a partition (``ProduceRequest``).
    public static let produce = OpCode(rawValue: 1)
    /// Read batches from an offset, waiting for data if asked (``FetchRequest``).
    public static let fetch = OpCode(rawValue: 2)
    /// Earliest, latest or by-time offset of a partition (``ListOffsetsRequest``).
    public static let listOffsets = OpCode(rawValue: 3)
    /// Topics, partitions and their offset ranges (``MetadataRequest``).
    public static let metadata = OpCode(rawValue: 4)
    /// Create a topic (``CreateTopicRequest``).
    public static let createTopic = OpCode(rawValue: 5)
    /// Get a producer id for idempotent produces (``InitProducerIDRequest``).
    public static let initProducerID = OpCode(rawValue: 6)
    /// Join a consumer group (``JoinGroupRequest``).
    public static let joinGroup = OpCode(rawValue: 7)
    /// Stay in a group and learn its assignment (``HeartbeatRequest``).
    public static let heartbeat = OpCode(rawValue: 8)
    /// Leave a group (``LeaveGroupRequest``).
    public static let leaveGroup = OpCode(rawValue: 9)
    /// Store a group's offsets (``CommitOffsetsRequest``).
    public static let commitOffsets = OpCode(rawValue: 10)
    /// Read a group's committed offsets (``FetchOffsetsRequest``).
    public static let fetchOffsets = OpCode(rawValue: 11)
    /// List the groups (``ListGroupsRequest``).
    public static let listGroups = OpCode(rawValue: 12)
    /// Describe a group: members, assignment, offsets, lag (``DescribeGroupRequest``).
    public static let describeGroup = OpCode(rawValue: 13)
    /// Describe one topic: settings in force, and per partition offsets and size on disk (``DescribeTopicRequest``).
    public static let describeTopic = OpCode(rawValue: 14)
    /// Delete a topic and its data (``DeleteTopicRequest``).
    public static let deleteTopic = OpCode(rawValue: 15)
    /// Read one key's records without scanning the partition (``FetchKeyRequest``).
    public static let fetchKey = OpCode(rawValue: 16)

    public var description: String {
        switch self {
        case .produce: "produce"
        case .fetch: "fetch"
        case .listOffsets: "list offsets"
        case .metadata: "metadata"
        case .createTopic: "create topic"
        case .initProducerID: "init producer id"
        case .joinGroup: "join group"
        case .heartbeat: "heartbeat"
        case .leaveGroup: "leave group"
        case .commitOffsets: "commit offsets"
        case .fetchOffsets: "fetch offsets"
        case .listGroups: "list groups"
        case .describeGroup: "describe group"
        case .describeTopic: "describe topic"
        case .deleteTopic: "delete topic"
        case .fetchKey: "fetch key"
        default: "op \(rawValue)"
        }
    }
}
