import Foundation
import Spool

/// Bytes as the API shows them: always base64 and size, the text when they are UTF-8, and the
/// parsed value when that text is a JSON object or array.
struct BytesView: Encodable {
    var size: Int
    var base64: String
    var text: String?
    var json: JSONValue?

    init(_ bytes: [UInt8]) {
        size = bytes.count
        base64 = Data(bytes).base64EncodedString()
        text = String(validating: bytes, as: UTF8.self)
        if let text, let first = text.first(where: { !$0.isWhitespace }), first == "{" || first == "[" {
            json = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        }
    }
}

/// Any JSON value, decoded and encoded again as it was (object keys sorted on output).
indirect enum JSONValue: Codable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

/// A stored record.
struct RecordView: Encodable {
    struct Header: Encodable {
        var name: String
        var value: BytesView
    }

    var topic: String
    var partition: Int32
    var offset: Int64
    var timestamp: Int64
    var time: String
    var key: BytesView?
    var headers: [Header]
    var value: BytesView

    init(_ record: SpoolRecord) {
        topic = record.topic
        partition = record.partition
        offset = record.offset
        timestamp = record.timestamp
        time = EventMetadata.formatTime(record.timestamp)
        key = record.key.map(BytesView.init)
        headers = record.headers.map { Header(name: $0.name, value: BytesView($0.value)) }
        value = BytesView(record.value)
    }
}

/// A page of records.
struct RecordPage: Encodable {
    var records: [RecordView]
    var nextOffset: Int64
    var logStartOffset: Int64
    var logEndOffset: Int64
}

/// A topic with its partitions and settings.
struct TopicView: Encodable {
    struct Partition: Encodable {
        var partition: Int32
        var logStartOffset: Int64
        var logEndOffset: Int64
        var sizeBytes: Int64
        var segmentCount: Int32
        var writeError: String?
    }

    var name: String
    var settings: [String: String]
    var topicSettings: [String: String]
    var partitions: [Partition]

    init(_ topic: TopicDescription) {
        name = topic.name
        settings = topic.settings
        topicSettings = topic.topicSettings
        partitions = topic.partitions.map {
            Partition(partition: $0.partition, logStartOffset: $0.logStartOffset, logEndOffset: $0.logEndOffset, sizeBytes: $0.sizeBytes,
                      segmentCount: $0.segmentCount, writeError: $0.writeError.isEmpty ? nil : $0.writeError)
        }
    }
}

/// A consumer group in detail.
struct GroupView: Encodable {
    struct Member: Encodable {
        var memberID: String
        var partitions: [PartitionName]
    }

    struct PartitionName: Encodable {
        var topic: String
        var partition: Int32
    }

    struct Progress: Encodable {
        var topic: String
        var partition: Int32
        var committedOffset: Int64
        var logEndOffset: Int64
        var lag: Int64
        var owner: String?
    }

    var group: String
    var state: String
    var generation: Int32
    var members: [Member]
    var partitions: [Progress]

    init(_ group: GroupDescription) {
        var owners: [TopicPartition: String] = [:]
        for member in group.members { for partition in member.partitions { owners[partition] = member.memberID } }
        self.group = group.group
        state = "\(group.state)"
        generation = group.generation
        members = group.members.map { Member(memberID: $0.memberID, partitions: $0.partitions.sorted().map { PartitionName(topic: $0.topic, partition: $0.partition) }) }
        partitions = group.partitions.sorted { $0.partition < $1.partition }.map {
            Progress(topic: $0.partition.topic, partition: $0.partition.partition, committedOffset: $0.committedOffset,
                     logEndOffset: $0.logEndOffset, lag: $0.lag, owner: owners[$0.partition])
        }
    }
}

/// The broker's status on the overview page.
struct StatusView: Encodable {
    struct Disk: Encodable {
        var totalBytes: Int64?
        var freeBytes: Int64?
    }

    struct RefusedWrites: Encodable {
        var topic: String
        var partition: Int32
        var reason: String
    }

    var version: String
    var endpoint: String
    var dataDirectory: String
    var fsync: String
    var startedAt: Int64
    var admin: Bool
    var ready: Bool
    var topics: Int
    var partitions: Int
    var connectedClients: Int?
    var disk: Disk
    var writesRefused: [RefusedWrites]
}
