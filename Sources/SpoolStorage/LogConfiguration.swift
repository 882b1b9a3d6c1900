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

/// Settings of one ``PartitionLog``. They may change while the log is open; each append uses the
/// values current at its call.
public struct LogConfiguration: Sendable, Hashable {
    /// Roll to a new segment when an append would make the active one larger than this. A batch
    /// larger than this gets a segment of its own. Values above 4 GiB - 1 act as 4 GiB - 1 (index
    /// positions are 32-bit). Default: 1 GiB.
    public var segmentBytes: Int
    /// Bytes between sparse index entries; smaller means faster lookups and bigger `.index` files.
    /// Default: 4096.
    public var indexIntervalBytes: Int
    /// When appended bytes reach the disk. The log itself never syncs; the broker runs the
    /// ``SyncWork`` from ``PartitionLog/takeSyncWork()`` as this policy says. Default: `.always`.
    public var fsync: FsyncPolicy

    /// Creates a configuration; every parameter has the default documented on its property.
    public init(segmentBytes: Int = 1 << 30, indexIntervalBytes: Int = 4096, fsync: FsyncPolicy = .always) {
        self.segmentBytes = segmentBytes
        self.indexIntervalBytes = indexIntervalBytes
        self.fsync = fsync
    }
}
