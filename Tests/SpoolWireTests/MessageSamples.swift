import SpoolWire
import Testing

/// One encodable value of a request, reply, error body or header, with type-erased ways to decode
/// bytes as its type. Lets one test body run over every message type.
struct MessageSample: Sendable, CustomTestStringConvertible {
    /// The type's name, shared by every sample of the type.
    let kind: String
    let testDescription: String
    /// The value's encoding.
    let encoded: [UInt8]
    /// Decodes `bytes` as the sample's type and returns the decoded value's encoding.
    let decodeAndReencode: @Sendable (UnsafeRawBufferPointer) throws(WireError) -> [UInt8]
    /// True if `bytes` decode to a value equal to the original.
    let decodesToOriginal: @Sendable ([UInt8]) throws(WireError) -> Bool
    /// Whether any successful decode re-encodes to exactly its input (false for types that
    /// normalise: header flag bits, error details sorted and deduplicated, long messages cut).
    let reencodesExactly: Bool
    /// Codes a failed decode may carry.
    let allowedErrorCodes: Set<ErrorCode>
    /// The length of the one strict prefix that decodes (a message whose last field is optional
    /// and absent from older senders: a produce without its condition), or nil.
    var decodablePrefixLength: Int? = nil

    static func message<M: WireMessage & Hashable>(_ value: M, _ label: String, extraErrors: Set<ErrorCode> = [],
                                                   decodablePrefixLength: Int? = nil) -> MessageSample {
        MessageSample(
            kind: "\(M.self)",
            testDescription: "\(M.self) \(label)",
            encoded: value.encoded(),
            decodeAndReencode: { bytes throws(WireError) in try M.decode(bytes).encoded() },
            decodesToOriginal: { bytes throws(WireError) in try M.decode(bytes) == value },
            reencodesExactly: true,
            allowedErrorCodes: Set<ErrorCode>([.malformedRequest]).union(extraErrors),
            decodablePrefixLength: decodablePrefixLength)
    }

    static func error(_ value: ErrorResponse, _ label: String) -> MessageSample {
        MessageSample(
            kind: "ErrorResponse",
            testDescription: "ErrorResponse \(label)",
            encoded: value.encoded(),
            decodeAndReencode: { bytes throws(WireError) in try ErrorResponse.decode(bytes).encoded() },
            decodesToOriginal: { bytes throws(WireError) in
                try withExactBytes(bytes) { buffer throws(WireError) in try ErrorResponse.decode(buffer) } == value
            },
            reencodesExactly: false,
            allowedErrorCodes: [.malformedRequest])
    }

    static func header(_ value: FrameHeader, _ label: String) -> MessageSample {
        MessageSample(
            kind: "FrameHeader",
            testDescription: "FrameHeader \(label)",
            encoded: value.encoded(),
            decodeAndReencode: { bytes throws(WireError) in try FrameHeader.decode(bytes).encoded() },
            decodesToOriginal: { bytes throws(WireError) in
                try withExactBytes(bytes) { buffer throws(WireError) in try FrameHeader.decode(buffer) } == value
            },
            reencodesExactly: false,
            allowedErrorCodes: [.malformedRequest])
    }
}

enum MessageSamples {
    static let unicode = "заказы-🚀-ünïcødé"
    static let long = String(repeating: "x", count: 300)

    static let all: [MessageSample] = produce + fetch + listOffsets + metadata + createTopic + producerIDs + groups + offsets + topics
        + errors + headers + keys

    /// The first sample of each type, for tests whose input does not depend on the value.
    static let oneOfEachKind: [MessageSample] = {
        var seen: Set<String> = []
        return all.filter { seen.insert($0.kind).inserted }
    }()

    static let produce: [MessageSample] = [
        .message(ProduceRequest(topic: "orders", partition: 0), "plain"),
        .message(ProduceRequest(topic: "", partition: -1), "empty topic, negative partition"),
        .message(ProduceRequest(topic: unicode, partition: .max), "unicode topic, max partition"),
        .message(ProduceRequest(topic: long, partition: .min), "long topic, min partition"),
        .message(ProduceResponse(partition: 0, baseOffset: 0, durability: .pageCache), "zero"),
        .message(ProduceResponse(partition: .max, baseOffset: .max, durability: .onDisk), "max"),
        .message(ProduceResponse(partition: -1, baseOffset: .min, durability: .syncScheduled), "negative"),
        .message(ProduceResponse(partition: 7, baseOffset: 42, durability: Durability(rawValue: 200)), "unknown durability"),
    ]

    /// Conditional produces and fetches by key (appended last: the seed corpus is numbered in this order).
    static let keys: [MessageSample] = [
        .message(ProduceRequest(topic: "orders", partition: 0, condition: KeyCondition(key: Array("order-1".utf8), lastOffset: -1)),
                 "conditional, key has no record", decodablePrefixLength: ProduceRequest(topic: "orders", partition: 0).encoded().count),
        .message(ProduceRequest(topic: unicode, partition: 3, condition: KeyCondition(key: [], lastOffset: .max)), "conditional, empty key, max offset",
                 decodablePrefixLength: ProduceRequest(topic: unicode, partition: 3).encoded().count),
        .message(FetchKeyRequest(topic: "orders", partition: 0, key: Array("order-1".utf8), offset: 0), "defaults"),
        .message(FetchKeyRequest(topic: "", partition: -1, key: [], offset: -1, maxBytes: 0), "zeros"),
        .message(FetchKeyRequest(topic: long, partition: .max, key: [UInt8](repeating: 0xff, count: 300), offset: .max, maxBytes: .max), "max"),
        .message(FetchKeyResponse(partition: 0, logStartOffset: 0, logEndOffset: 0, nextOffset: 0, lastOffset: -1), "no record"),
        .message(FetchKeyResponse(partition: .max, logStartOffset: .max, logEndOffset: .max, nextOffset: .max, lastOffset: .max), "max"),
        .message(FetchKeyResponse(partition: -1, logStartOffset: .min, logEndOffset: -1, nextOffset: .min, lastOffset: .min), "negative"),
    ]

    static let fetch: [MessageSample] = [
        .message(FetchRequest(topic: "orders", partition: 0, offset: 0), "defaults"),
        .message(FetchRequest(topic: "", partition: -1, offset: -1, maxWaitMilliseconds: 0, minBytes: 0, maxBytes: 0), "zeros"),
        .message(FetchRequest(topic: unicode, partition: .max, offset: .max, maxWaitMilliseconds: .max,
                              minBytes: .max, maxBytes: .max), "max"),
        .message(FetchRequest(topic: "t", partition: .min, offset: .min, maxWaitMilliseconds: 1000), "min"),
        .message(FetchResponse(partition: 0, logStartOffset: 0, logEndOffset: 0), "empty log"),
        .message(FetchResponse(partition: .max, logStartOffset: .max, logEndOffset: .max), "max"),
        .message(FetchResponse(partition: -1, logStartOffset: .min, logEndOffset: -1), "negative"),
    ]

    static let listOffsets: [MessageSample] = [
        .message(ListOffsetsRequest(topic: "orders", partition: 0, spec: .earliest), "earliest", extraErrors: [.invalidRequest]),
        .message(ListOffsetsRequest(topic: "", partition: -1, spec: .latest), "latest, empty topic", extraErrors: [.invalidRequest]),
        .message(ListOffsetsRequest(topic: unicode, partition: 3, spec: .timestamp(1_700_000_000_000)), "timestamp",
                 extraErrors: [.invalidRequest]),
        .message(ListOffsetsRequest(topic: "t", partition: .max, spec: .timestamp(.max)), "max timestamp",
                 extraErrors: [.invalidRequest]),
        .message(ListOffsetsRequest(topic: "t", partition: .min, spec: .timestamp(0)), "timestamp 0", extraErrors: [.invalidRequest]),
        .message(ListOffsetsResponse(partition: 0, offset: 0), "zero"),
        .message(ListOffsetsResponse(partition: .min, offset: .max), "extremes"),
        .message(ListOffsetsResponse(partition: -1, offset: -1), "negative"),
    ]

    static let metadata: [MessageSample] = [
        .message(MetadataRequest(), "all topics"),
        .message(MetadataRequest(topics: ["orders"]), "one topic"),
        .message(MetadataRequest(topics: ["orders"], allowAutoCreation: true), "one topic, created if missing (a producer)"),
        .message(MetadataRequest(topics: ["", unicode, "a.b-c_D9", long]), "edge names"),
        .message(MetadataRequest(topics: (0..<50).map { "topic-\($0)" }), "fifty topics"),
        .message(MetadataResponse(brokerVersion: "", topics: []), "empty"),
        .message(MetadataResponse(brokerVersion: "0.1.0", topics: [
            .init(name: "orders", partitions: [
                .init(partition: 0, logStartOffset: 0, logEndOffset: 0),
                .init(partition: 1, logStartOffset: 5, logEndOffset: .max),
                .init(partition: -1, logStartOffset: .min, logEndOffset: -1),
            ]),
            .init(name: unicode, errorCode: .unknownTopic, partitions: []),
            .init(name: "", errorCode: .invalidTopicName, partitions: []),
            .init(name: "future", errorCode: ErrorCode(rawValue: 999), partitions: []),
            .init(name: "empty-topic", partitions: []),
        ]), "nested topics, partitions and error codes"),
        .message(MetadataResponse(brokerVersion: unicode, topics: [
            .init(name: long, partitions: (0..<20).map { .init(partition: $0, logStartOffset: Int64($0), logEndOffset: Int64($0) * 1000) }),
        ]), "many partitions"),
    ]

    static let createTopic: [MessageSample] = [
        .message(CreateTopicRequest(name: "orders"), "default partitions"),
        .message(CreateTopicRequest(name: "", partitions: 0), "empty name, zero partitions"),
        .message(CreateTopicRequest(name: unicode, partitions: .min), "unicode, min partitions"),
        .message(CreateTopicRequest(name: long, partitions: .max), "long, max partitions"),
        .message(CreateTopicRequest(name: "orders", partitions: 6, settings: ["retention.ms": "60000", "fsync": "never"]), "with settings"),
        .message(CreateTopicResponse(name: "orders", partitions: 3), "plain"),
        .message(CreateTopicResponse(name: "", partitions: -1), "empty"),
        .message(CreateTopicResponse(name: unicode, partitions: .max), "unicode"),
    ]

    static let producerIDs: [MessageSample] = [
        .message(InitProducerIDRequest(), "empty"),
        .message(InitProducerIDResponse(producerID: 0, producerEpoch: 0), "zero"),
        .message(InitProducerIDResponse(producerID: .max, producerEpoch: .min), "extremes"),
    ]

    static let p0 = TopicPartition(topic: "orders", partition: 0)
    static let edge = TopicPartition(topic: unicode, partition: .max)

    static let groups: [MessageSample] = [
        .message(JoinGroupRequest(group: "workers", topics: ["orders"]), "first join"),
        .message(JoinGroupRequest(group: unicode, memberID: long, sessionTimeoutMilliseconds: .max, topics: ["a", "", unicode],
                                  owned: [p0, edge]), "rejoin with owned partitions"),
        .message(JoinGroupRequest(group: "", sessionTimeoutMilliseconds: 0, topics: []), "empty"),
        .message(JoinGroupResponse(assignment: GroupAssignment(memberID: "m-1", generation: 3, heartbeatIntervalMilliseconds: 3333,
                                                               partitions: [p0, edge])), "two partitions"),
        .message(JoinGroupResponse(assignment: GroupAssignment(memberID: "", generation: .min, heartbeatIntervalMilliseconds: 0,
                                                               partitions: [])), "nothing"),
        .message(HeartbeatRequest(group: "workers", memberID: "m-1", generation: 7, owned: [p0]), "plain"),
        .message(HeartbeatRequest(group: long, memberID: unicode, generation: -1, owned: []), "edges"),
        .message(HeartbeatResponse(assignment: GroupAssignment(memberID: "m-2", generation: .max, heartbeatIntervalMilliseconds: .max,
                                                               partitions: (0..<30).map { TopicPartition(topic: "t", partition: $0) })),
                 "thirty partitions"),
        .message(LeaveGroupRequest(group: "workers", memberID: "m-1"), "plain"),
        .message(LeaveGroupResponse(), "empty"),
        .message(ListGroupsRequest(), "empty"),
        .message(ListGroupsResponse(groups: []), "none"),
        .message(ListGroupsResponse(groups: [.init(name: "workers", state: .stable, memberCount: 3),
                                             .init(name: unicode, state: GroupState(rawValue: 99), memberCount: .max)]), "two"),
        .message(DescribeGroupRequest(group: "workers"), "plain"),
        .message(DescribeGroupResponse(group: "workers", state: .rebalancing, generation: 4,
                                       members: [.init(memberID: "m-1", partitions: [p0]), .init(memberID: unicode, partitions: [])],
                                       partitions: [.init(partition: p0, committedOffset: -1, logEndOffset: 10, lag: 10),
                                                    .init(partition: edge, committedOffset: .max, logEndOffset: .min, lag: 0)]), "full"),
        .message(DescribeGroupResponse(group: "", state: .empty, generation: 0, members: [], partitions: []), "empty"),
    ]

    static let offsets: [MessageSample] = [
        .message(CommitOffsetsRequest(group: "workers", memberID: "m-1", generation: 2,
                                      offsets: [CommittedOffset(partition: p0, offset: 42, metadata: "note"),
                                                CommittedOffset(partition: edge, offset: .max, metadata: unicode)]), "two offsets"),
        .message(CommitOffsetsRequest(group: "workers", memberID: "", generation: -1, offsets: []), "administrative, empty"),
        .message(CommitOffsetsResponse(), "empty"),
        .message(FetchOffsetsRequest(group: "workers"), "all"),
        .message(FetchOffsetsRequest(group: unicode, partitions: [p0, edge]), "two"),
        .message(FetchOffsetsResponse(offsets: []), "none"),
        .message(FetchOffsetsResponse(offsets: [CommittedOffset(partition: p0, offset: -1), CommittedOffset(partition: edge, offset: 0, metadata: long)]),
                 "two"),
    ]

    static let topics: [MessageSample] = [
        .message(DescribeTopicRequest(name: "orders"), "plain"),
        .message(DescribeTopicRequest(name: unicode), "unicode"),
        .message(DescribeTopicResponse(name: "orders", settings: ["fsync": "always", "retention.ms": "-1", "segment.bytes": "1073741824"],
                                       topicSettings: ["retention.ms": "-1"],
                                       partitions: [.init(partition: 0, logStartOffset: 0, logEndOffset: 10, sizeBytes: 1234, segmentCount: 1),
                                                    .init(partition: .max, logStartOffset: .max, logEndOffset: .min, sizeBytes: .max, segmentCount: .min,
                                                          writeError: "the disk is full (0 B free on /data): \(unicode)")]),
                 "full"),
        .message(DescribeTopicResponse(name: "", settings: [:], topicSettings: [unicode: long, "": ""], partitions: []), "empty"),
        .message(DeleteTopicRequest(name: "orders"), "plain"),
        .message(DeleteTopicRequest(name: long), "long"),
        .message(DeleteTopicResponse(name: "orders", partitions: 3), "plain"),
        .message(DeleteTopicResponse(name: unicode, partitions: .min), "edges"),
    ]

    static let errors: [MessageSample] = [
        .error(ErrorResponse(message: ""), "empty"),
        .error(ErrorResponse(message: "offset 9 is outside orders/0", details: ["earliest": 0, "latest": .max]), "details"),
        .error(ErrorResponse(message: "the batch header disagrees with its records: maxTimestamp 1000 is not the largest record timestamp 2000", details: ["field": 31]), "inconsistent batch"),
        .error(ErrorResponse(message: unicode, details: ["": .min, unicode: -1, "z": 0, "a": 1]), "unicode and edge details"),
        .error(ErrorResponse(WireError(.recordTooLarge, "record 3 is 2000000 bytes")), "from a WireError"),
    ]

    static let headers: [MessageSample] = [
        .header(FrameHeader(opCode: .produce, correlationID: 0), "produce request"),
        .header(FrameHeader(opCode: .fetch, isReply: true, errorCode: .offsetOutOfRange, correlationID: .max), "fetch error reply"),
        .header(FrameHeader(opCode: .listOffsets, correlationID: 1), "list offsets"),
        .header(FrameHeader(opCode: .metadata, isReply: true, correlationID: 0x0102_0304_0506_0708), "metadata reply"),
        .header(FrameHeader(opCode: .createTopic, isReply: true, errorCode: .topicAlreadyExists, correlationID: 77), "create topic"),
        .header(FrameHeader(version: 0, opCode: OpCode(rawValue: 0), correlationID: 5), "version 0, op 0"),
        .header(FrameHeader(version: .max, opCode: OpCode(rawValue: .max), isReply: true,
                            errorCode: ErrorCode(rawValue: .max), correlationID: .max), "all max"),
    ]
}
