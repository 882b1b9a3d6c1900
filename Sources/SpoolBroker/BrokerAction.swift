import SpoolStorage
import SpoolWire

/// The routing identity of a connected client, opaque to the broker.
public struct ClientID: Hashable, Sendable {
    /// The transport's routing id bytes.
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
}

/// A partition of a topic, the unit of ordering, storage and syncing.
public struct PartitionKey: Hashable, Sendable, CustomStringConvertible {
    /// The topic.
    public let topic: TopicName
    /// The partition number, from 0.
    public let partition: Int32
    public init(topic: TopicName, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public var description: String { "\(topic)/\(partition)" }
}

/// What a sync submitted to the flusher is for: a partition, in one epoch of its log. The epoch
/// changes when the broker cut the log after a failed sync, so results of syncs submitted before
/// the cut are recognized and ignored.
public struct SyncKey: Hashable, Sendable, CustomStringConvertible {
    /// The partition synced.
    public let partition: PartitionKey
    /// The epoch of its log when the work was taken.
    public let epoch: Int
    /// The key of work taken from `partition` in `epoch`.
    public init(partition: PartitionKey, epoch: Int) {
        self.partition = partition
        self.epoch = epoch
    }
    /// "orders/0@1".
    public var description: String { "\(partition)@\(epoch)" }
}

/// One frame of a reply, as the broker decided it: bytes it built (empty for a fetch reply
/// without records), or a slice of a partition log for the transport to read straight into
/// its message buffer.
public enum ReplyFrame: Sendable {
    /// Bytes to send as they are.
    case bytes([UInt8])
    /// File bytes to read into the frame (fetch replies).
    case logSlice(LogSlice)
}

/// What the transport must do after the broker handled an event.
public enum BrokerAction: Sendable {
    /// Send `frames` (header first) to `client`.
    case reply(to: ClientID, frames: [ReplyFrame])
}
