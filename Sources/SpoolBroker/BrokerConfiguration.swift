import SpoolStorage
import SpoolWire

/// Settings of the broker logic. Every field has the default `spoold` uses when nothing is configured.
public struct BrokerConfiguration: Sendable, Hashable {
    /// Directory holding topics, partition logs and the lock file. Default: `./spool-data`.
    public var dataDirectory: String
    /// Create a topic on first produce or fetch instead of answering "unknown topic". Default: `true`.
    public var autoCreateTopics: Bool
    /// Partitions of an auto-created topic. Default: 1.
    public var defaultPartitions: Int32
    /// The log settings of every topic that does not set its own (see `LogSettings`).
    /// Default: `LogConfiguration()`: 1 GiB or 7-day segments, an index entry every 4 KiB,
    /// `fsync: always`, 7 days of retention, no size limit.
    public var log: LogConfiguration
    /// Largest record batch a produce may carry, in bytes. Default: 1 MiB.
    public var maxBatchBytes: Int
    /// Largest single record (key, value and headers encoded), in bytes. Default: 1 MiB.
    public var maxRecordBytes: Int
    /// Most record bytes one fetch reply carries, whatever the client asks (a single batch larger
    /// than this is still sent whole). Default: 4 MiB.
    public var maxFetchBytes: Int
    /// Most records one batch may hold. Default: 100,000.
    public var maxRecordsPerBatch: Int
    /// Most topics the broker creates (auto-created ones included). Default: 10,000.
    public var maxTopics: Int
    /// Most descriptors the partition logs hold open at once (segments, indexes, key-index files,
    /// partition directories; see `OpenFileCache`): files are opened on demand and the least
    /// recently used closed, so an idle partition holds none. nil: half the process's soft
    /// open-file limit when the broker starts (`OpenFileCache.defaultCapacity`). Default: nil.
    public var maxOpenFiles: Int?
    /// Most fetches one client may have waiting at once (long polls); one more is refused with
    /// "invalid request". Default: 1,000.
    public var maxParkedFetchesPerClient: Int
    /// Most produces (under `fsync: always`) and commits one client may have waiting for their
    /// sync at once; one more is refused with "invalid request" (its bytes are not written).
    /// Default: 10,000.
    public var maxWaitingRequestsPerClient: Int
    /// Longest a fetch may stay parked, whatever it asks for. Default: 30,000 ms.
    public var maxFetchWaitMilliseconds: Int
    /// How often retention looks for segments to delete, and the log cleaner for partitions to
    /// compact. Default: 60,000 ms.
    public var retentionCheckIntervalMilliseconds: Int
    /// After the broker starts, how long the groups that existed before (those with committed
    /// offsets) wait for their members to rejoin: meanwhile a rejoining member keeps the
    /// partitions it says it holds and a new member gets none, so a member that did not notice
    /// the restart yet never shares a partition with a newcomer. Default: 10,000 ms (the SDK's
    /// default session timeout).
    public var groupRejoinGraceMilliseconds: Int
    /// Who may produce to, consume from and create which topics; nil lets every client do
    /// everything. Identities come from CURVE (the names in `curve.clients`). Default: nil.
    public var accessRules: AccessRules?
    /// Topics that must exist, with their partition counts and settings: created at start when
    /// missing; the settings of an existing one are replaced by these. Default: none.
    public var declaredTopics: [TopicName: TopicMetadata]

    /// Creates a configuration; every parameter has the default documented on its property.
    public init(
        dataDirectory: String = "./spool-data",
        autoCreateTopics: Bool = true,
        defaultPartitions: Int32 = 1,
        log: LogConfiguration = LogConfiguration(),
        maxBatchBytes: Int = 1 << 20,
        maxRecordBytes: Int = 1 << 20,
        maxFetchBytes: Int = 4 << 20,
        maxRecordsPerBatch: Int = 100_000,
        maxTopics: Int = 10_000,
        maxOpenFiles: Int? = nil,
        maxParkedFetchesPerClient: Int = 1_000,
        maxWaitingRequestsPerClient: Int = 10_000,
        maxFetchWaitMilliseconds: Int = 30_000,
        retentionCheckIntervalMilliseconds: Int = 60_000,
        groupRejoinGraceMilliseconds: Int = 10_000,
        accessRules: AccessRules? = nil,
        declaredTopics: [TopicName: TopicMetadata] = [:]
    ) {
        self.dataDirectory = dataDirectory
        self.autoCreateTopics = autoCreateTopics
        self.defaultPartitions = defaultPartitions
        self.log = log
        self.maxBatchBytes = maxBatchBytes
        self.maxRecordBytes = maxRecordBytes
        self.maxFetchBytes = maxFetchBytes
        self.maxRecordsPerBatch = maxRecordsPerBatch
        self.maxTopics = maxTopics
        self.maxOpenFiles = maxOpenFiles
        self.maxParkedFetchesPerClient = maxParkedFetchesPerClient
        self.maxWaitingRequestsPerClient = maxWaitingRequestsPerClient
        self.maxFetchWaitMilliseconds = maxFetchWaitMilliseconds
        self.retentionCheckIntervalMilliseconds = retentionCheckIntervalMilliseconds
        self.groupRejoinGraceMilliseconds = groupRejoinGraceMilliseconds
        self.accessRules = accessRules
        self.declaredTopics = declaredTopics
    }
}
