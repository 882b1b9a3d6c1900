/// Settings of a ``Consumer``. Every field has a default.
public struct ConsumerConfiguration: Sendable, Hashable {
    /// Where a partition starts when the group has no committed offset for it (or the committed
    /// one is no longer in the log).
    public enum OffsetReset: Sendable, Hashable {
        /// The first record still stored. The default: a new group misses nothing.
        case earliest
        /// Only records published from now on.
        case latest
        /// Fail the consumer with ``SpoolError/Code/offsetOutOfRange``.
        case error
    }

    /// Silence after which the broker removes the member and moves its partitions; heartbeats go
    /// every third of it. Default: 10 seconds.
    public var sessionTimeout: Duration
    /// Start of a partition without a usable committed offset. Default: ``OffsetReset/earliest``.
    public var autoOffsetReset: OffsetReset
    /// Commit processed records automatically: every ``autoCommitInterval``, when a partition is
    /// revoked, and on ``Consumer/close()``. Default: true. Without it, only
    /// ``Consumer/commit(_:)`` and ``Consumer/commit()`` commit.
    public var autoCommit: Bool
    /// How often automatic commits go out (they are batched: one request for every partition
    /// that moved). Default: 1 second.
    public var autoCommitInterval: Duration
    /// Records fetched ahead of the handler, across partitions; fetching pauses while the buffer
    /// is full, so a slow handler never makes memory grow. Default: 1,000.
    public var maxBufferedRecords: Int

    public init(sessionTimeout: Duration = .seconds(10), autoOffsetReset: OffsetReset = .earliest, autoCommit: Bool = true,
                autoCommitInterval: Duration = .seconds(1), maxBufferedRecords: Int = 1000) {
        self.sessionTimeout = sessionTimeout
        self.autoOffsetReset = autoOffsetReset
        self.autoCommit = autoCommit
        self.autoCommitInterval = autoCommitInterval
        self.maxBufferedRecords = maxBufferedRecords
    }
}

/// A change of a ``Consumer``'s partitions, in ``Consumer/events``.
public enum ConsumerEvent: Sendable, Hashable {
    /// The consumer started consuming these partitions.
    case assigned([TopicPartition])
    /// These partitions moved to another member; their processed offsets were committed first
    /// (with automatic commits) and the consumer stopped reading them.
    case revoked([TopicPartition])
    /// The consumer lost these partitions without a handoff (no heartbeat got through within the
    /// session timeout, so the broker may have given them to another member); nothing was committed.
    case lost([TopicPartition])
}
