/// When appended bytes must reach the disk before a produce is acknowledged.
public enum FsyncPolicy: Sendable, Hashable {
    /// Acknowledge only after an fdatasync covered the bytes (group commit makes one sync serve
    /// every append that arrived while the previous one ran).
    case always
    /// Sync at most every `milliseconds`; acknowledge after the page cache has the bytes.
    case interval(milliseconds: Int)
    /// Never sync explicitly; the kernel writes back when it likes.
    case never
}

/// What happens to the records of sealed segments (`cleanup.policy`).
public enum CleanupPolicy: String, Sendable, Hashable, CaseIterable {
    /// Retention deletes whole old segments (`retention.ms`, `retention.bytes`).
    case delete
    /// The log cleaner keeps the last record of each key (see ``PartitionLog/cleaningPass(keepingNewestSegments:nowMilliseconds:)``);
    /// retention deletes nothing.
    case compact
    /// Both: the cleaner compacts, and retention still deletes old segments.
    case compactAndDelete = "compact,delete"

    /// Whether retention deletes old segments.
    public var deletes: Bool { self != .compact }
    /// Whether the log cleaner compacts.
    public var compacts: Bool { self != .delete }
}

/// Settings of one ``PartitionLog``. They may change while the log is open; each call uses the
/// values current at its start.
public struct LogConfiguration: Sendable, Hashable {
    /// Roll to a new segment when an append would make the active one larger than this. A batch
    /// larger than this gets a segment of its own. Values above 4 GiB - 1 act as 4 GiB - 1 (index
    /// positions are 32-bit). Default: 1 GiB.
    public var segmentBytes: Int
    /// Roll to a new segment at the first append once the active one has taken appends for this
    /// long (counted from its first append in this process), so that retention can delete old
    /// data of a topic that writes little. Nil: never roll by age. Default: 7 days.
    public var segmentMilliseconds: Int64?
    /// Bytes between sparse index entries; smaller means faster lookups and bigger index files.
    /// Default: 4096.
    public var indexIntervalBytes: Int
    /// When appended bytes reach the disk. The log itself never syncs; the broker runs the
    /// ``SyncWork`` from ``PartitionLog/takeSyncWork()`` as this policy says. Default: `.always`.
    public var fsync: FsyncPolicy
    /// Delete a sealed segment once its newest record is older than this. Nil: keep forever.
    /// Default: 7 days.
    public var retentionMilliseconds: Int64?
    /// Delete the oldest sealed segments while the log without them still holds at least this
    /// many bytes. Nil: no size limit. Default: nil.
    public var retentionBytes: Int64?

    /// Keys the key index holds in memory for the newest records before it writes them to a
    /// file of its own (see ``PartitionLog/lastOffset(ofKey:)``): about 100 bytes each, plus 20
    /// per batch holding them. Default: 16,384.
    public var keyIndexKeysInMemory: Int

    /// What happens to old records: deletion by retention, compaction by key, or both.
    /// Default: `.delete`.
    public var cleanupPolicy: CleanupPolicy
    /// How long the log cleaner keeps a tombstone (a keyed record with an empty value) that is
    /// its key's last record, counted from the tombstone's timestamp, so that readers see the
    /// deletion; then it removes it. Default: 1 day.
    public var deleteRetentionMilliseconds: Int64

    /// Seven days in milliseconds, the default of ``segmentMilliseconds`` and ``retentionMilliseconds``.
    public static let sevenDaysInMilliseconds: Int64 = 7 * 24 * 3_600_000

    /// Creates a configuration; every parameter has the default documented on its property.
    public init(segmentBytes: Int = 1 << 30, segmentMilliseconds: Int64? = sevenDaysInMilliseconds, indexIntervalBytes: Int = 4096,
                fsync: FsyncPolicy = .always, retentionMilliseconds: Int64? = sevenDaysInMilliseconds, retentionBytes: Int64? = nil,
                keyIndexKeysInMemory: Int = 16_384, cleanupPolicy: CleanupPolicy = .delete, deleteRetentionMilliseconds: Int64 = 86_400_000) {
        self.segmentBytes = segmentBytes
        self.segmentMilliseconds = segmentMilliseconds
        self.indexIntervalBytes = indexIntervalBytes
        self.fsync = fsync
        self.retentionMilliseconds = retentionMilliseconds
        self.retentionBytes = retentionBytes
        self.keyIndexKeysInMemory = keyIndexKeysInMemory
        self.cleanupPolicy = cleanupPolicy
        self.deleteRetentionMilliseconds = deleteRetentionMilliseconds
    }
}
