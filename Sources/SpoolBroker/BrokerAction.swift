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

/// What a sync submitted to the flusher is for: a partition or the committed-offset store, in
/// one epoch. A partition's epoch changes when the broker cut its log after a failed sync, so
/// results of syncs submitted before the cut are recognized and ignored.
public struct SyncKey: Hashable, Sendable, CustomStringConvertible {
    /// What is synced.
    public enum Subject: Hashable, Sendable {
        /// A partition's log.
        case partition(PartitionKey)
        /// The consumer groups' committed offsets.
        case committedOffsets
    }

    /// What is synced.
    public let subject: Subject
    /// The epoch of its files when the work was taken.
    public let epoch: Int

    /// The key of work taken from `partition` in `epoch`.
    public init(partition: PartitionKey, epoch: Int) {
        subject = .partition(partition)
        self.epoch = epoch
    }

    /// The key of work taken from the committed-offset store in `epoch` (bumped when a failed
    /// sync made the broker rewrite the store into new files).
    public static func committedOffsets(epoch: Int) -> SyncKey { SyncKey(subject: .committedOffsets, epoch: epoch) }

    private init(subject: Subject, epoch: Int) {
        self.subject = subject
        self.epoch = epoch
    }

    /// "orders/0@1", or "committed offsets@0".
    public var description: String {
        switch subject {
        case .partition(let partition): "\(partition)@\(epoch)"
        case .committedOffsets: "committed offsets@\(epoch)"
        }
    }
}

/// One frame of a reply, as the broker decided it: bytes it built (empty for a fetch reply
/// without records), or a slice of a partition log for the transport to read straight into
/// its message buffer.
public enum ReplyFrame: Sendable {
    /// Bytes to send as they are.
    case bytes([UInt8])
    /// File bytes to read into the frame one after another (fetch replies).
    case logSlices([LogSlice])
}

/// What the transport must do after the broker handled an event.
public enum BrokerAction: Sendable {
    /// Send `frames` (header first) to `client`.
    case reply(to: ClientID, frames: [ReplyFrame])
}
