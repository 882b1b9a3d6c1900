import Logging
import Metrics
import SpoolStorage
import SpoolWire

/// A produce appended under `fsync: always`, waiting for a sync that covers it.
struct PendingAck {
    let client: ClientID
    let header: FrameHeader
    let partition: Int32
    let baseOffset: Int64
    let lastOffset: Int64
    /// Monotonic nanoseconds of its arrival, for `spool_produce_ack_seconds`.
    let arrivedAt: UInt64
}

/// The broker's view of one partition: its log, what is known to be on disk, and the
/// produces waiting for that. Owned by the broker's thread.
final class PartitionState {
    let key: PartitionKey
    let log: PartitionLog
    /// Everything below this offset is on disk (recovered data counts as on disk).
    var durableEnd: Int64
    /// Monotonic time of the last sync taken, for `fsync: interval`.
    var lastSyncAt: Int64 = 0
    /// In append order, so acknowledgement pops from the front.
    var pendingAcks: [PendingAck] = []
    /// Bumped when a failed sync made the broker cut or re-sync the log; results of syncs taken
    /// in an earlier epoch are ignored.
    var epoch = 0
    /// Everything submitted for syncing in this epoch and not yet confirmed (new work is merged
    /// into it, so a sync still running is covered again); a clean close needs it confirmed.
    var unconfirmedSync: SyncWork?
    /// Why the partition refuses produces: after a failed sync, the log could not be cut back
    /// (each produce tries the cut again).
    var offlineReason: String?
    /// The idempotent producers' last batches, for telling retries from new batches.
    var producers: ProducerStates
    /// The last cleaning pass installed in this process: the offset it cleaned up to and when it
    /// started (ms since the epoch); nil before the first.
    var lastCleaning: (end: Int64, at: Int64)?
    /// The partition's metrics.
    let metrics: BrokerMetrics.Partition
    /// Arrival to acknowledgement of produces that waited for a sync.
    private let acknowledgementTimer = Timer(label: "spool_produce_ack_seconds")

    /// The state of an opened log; the producer state comes from its newest segments.
    init(key: PartitionKey, log: PartitionLog) throws(StorageError) {
        self.key = key
        self.log = log
        durableEnd = log.logEndOffset
        producers = try ProducerStates(recoveredFrom: log)
        metrics = BrokerMetrics.Partition(key)
    }

    /// Rebuilds the producer state from the log, after the log was cut back.
    func reloadProducers() throws(StorageError) {
        producers = try ProducerStates(recoveredFrom: log)
    }

    var policy: FsyncPolicy { log.configuration.fsync }

    /// Topic, partition and directory, for log lines about this partition.
    var logMetadata: Logger.Metadata {
        ["topic": "\(key.topic)", "partition": "\(key.partition)", "path": "\(log.directory)"]
    }

    /// The key of syncs taken now.
    var syncKey: SyncKey { SyncKey(partition: key, epoch: epoch) }

    /// The end of what consumers may read: the synced end under `fsync: always`, else all appended data.
    var visibleEnd: Int64 { policy == .always ? durableEnd : log.logEndOffset }

    /// Acknowledges every pending produce that lies wholly below `end`.
    func acknowledge(upTo end: Int64) -> [BrokerAction] {
        let count = pendingAcks.prefix { $0.lastOffset < end }.count
        let done = pendingAcks.prefix(count)
        pendingAcks.removeFirst(count)
        let now = BrokerMetrics.nanosecondsNow
        for ack in done { acknowledgementTimer.recordNanoseconds(Int64(clamping: now &- ack.arrivedAt)) }
        return done.map {
            reply($0.client, $0.header, ProduceResponse(partition: $0.partition, baseOffset: $0.baseOffset, durability: .onDisk))
        }
    }

    /// Answers every pending produce with `error`.
    func failAcknowledgements(error: WireError) -> [BrokerAction] {
        defer { pendingAcks = [] }
        return pendingAcks.map { errorReply($0.client, $0.header, error) }
    }
}
