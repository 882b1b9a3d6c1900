import SpoolWire

/// Where a ``Consumer`` stands on one partition it owns.
struct PartitionProgress {
    /// Records pushed with another epoch (from a fetch of an earlier assignment) are dropped.
    let epoch: Int
    /// The task long-polling the partition; nil once stopped.
    var fetcher: Task<Void, Never>?
    /// The offset after the last processed record; nil before the first.
    var processed: Int64?
    /// The offset last committed (or found committed at assignment); nil if none.
    var committed: Int64?

    init(epoch: Int, fetcher: Task<Void, Never>, committed: Int64?) {
        self.epoch = epoch
        self.fetcher = fetcher
        self.committed = committed
    }

    mutating func noteCommitted(_ offset: Int64) {
        committed = max(committed ?? offset, offset)
    }
}

/// What ``ConsumerState/takeRecord(maxBuffered:)`` found.
enum TakeOutcome {
    /// The next record, and fetchers that may run again now that there is room.
    case record(SpoolRecord, freed: [CheckedContinuation<Void, Never>])
    /// Nothing buffered: wait.
    case empty
    /// The consumer was closed.
    case finished
    /// The consumer failed.
    case failed(SpoolError)
}

/// The mutable state of a ``Consumer``, guarded by its mutex: the owned partitions, the prefetch
/// buffer, and who waits for what.
struct ConsumerState {
    var memberID = ""
    var generation: Int32 = -1
    var partitions: [TopicPartition: PartitionProgress] = [:]
    /// Fetched records not yet returned, in arrival order (per partition in offset order).
    private var buffer: [SpoolRecord] = []
    private var head = 0
    /// The record returned last, until the reader asks for the next (then it is processed).
    private var lastDelivered: SpoolRecord?
    /// The iterating task, waiting for a record.
    var waitingReader: CheckedContinuation<Void, Never>?
    /// Fetchers waiting for room in the buffer.
    var spaceWaiters: [CheckedContinuation<Void, Never>] = []
    /// Set by a revocation (which the membership loop itself makes) so that the loop sends its
    /// heartbeat, the release, at once instead of sleeping until the next one is due.
    var heartbeatNow = false
    var failure: SpoolError?
    /// True once the consumer closed: no more records, fetchers stop.
    private(set) var isStopped = false
    private var epochCounter = 0

    var bufferedCount: Int { buffer.count - head }

    /// True when ``takeRecord(maxBuffered:)`` would not return `.empty`.
    var hasRecordOrEnd: Bool { bufferedCount > 0 || isStopped || failure != nil }

    mutating func nextEpoch() -> Int {
        epochCounter += 1
        return epochCounter
    }

    /// Marks the last record returned processed and returns the next, if any.
    mutating func takeRecord(maxBuffered: Int) -> TakeOutcome {
        markLastDeliveredProcessed()
        if let failure { return .failed(failure) }
        if isStopped { return .finished }
        guard head < buffer.count else { return .empty }
        let record = buffer[head]
        head += 1
        if head == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024, head * 2 >= buffer.count {
            buffer.removeFirst(head)
            head = 0
        }
        lastDelivered = record
        let freed = bufferedCount < maxBuffered ? spaceWaiters : []
        if !freed.isEmpty { spaceWaiters = [] }
        return .record(record, freed: freed)
    }

    mutating func markLastDeliveredProcessed() {
        guard let record = lastDelivered else { return }
        lastDelivered = nil
        markProcessed(record)
    }

    mutating func markProcessed(_ record: SpoolRecord) {
        let partition = TopicPartition(topic: record.topic, partition: record.partition)
        guard partitions[partition] != nil else { return }
        partitions[partition]!.processed = max(partitions[partition]!.processed ?? 0, record.offset + 1)
    }

    /// True while the handler holds a record of one of `partitions`.
    func isHandling(_ partitions: Set<TopicPartition>) -> Bool {
        guard let record = lastDelivered else { return false }
        return partitions.contains(TopicPartition(topic: record.topic, partition: record.partition))
    }

    /// Appends the first records fetched for `partition` under `epoch` that fit below
    /// `maxBuffered` (none if the partition moved on); returns how many it took and the reader to wake.
    mutating func push(_ records: [SpoolRecord], to partition: TopicPartition, epoch: Int,
                       maxBuffered: Int) -> (taken: Int, reader: CheckedContinuation<Void, Never>?) {
        guard partitions[partition]?.epoch == epoch, !isStopped else { return (0, nil) }
        let taken = min(records.count, max(maxBuffered - bufferedCount, 0))
        buffer.append(contentsOf: records.prefix(taken))
        return (taken, taken > 0 ? takeReader() : nil)
    }

    mutating func takeReader() -> CheckedContinuation<Void, Never>? {
        defer { waitingReader = nil }
        return waitingReader
    }

    /// The processed offsets not committed yet, of `only` (nil: every partition).
    func uncommitted(in only: Set<TopicPartition>?) -> [CommittedOffset] {
        partitions.compactMap { partition, progress in
            guard only?.contains(partition) ?? true, let processed = progress.processed, processed != progress.committed else { return nil }
            return CommittedOffset(partition: partition, offset: processed)
        }.sorted { $0.partition < $1.partition }
    }

    /// Stops fetching `partitions` and drops their buffered records; returns the fetchers to
    /// cancel and the waiters to wake (they re-check whether they still may run).
    mutating func stopFetching(_ stopped: Set<TopicPartition>) -> ([Task<Void, Never>], [CheckedContinuation<Void, Never>]) {
        var fetchers: [Task<Void, Never>] = []
        for partition in stopped {
            if let fetcher = partitions[partition]?.fetcher { fetchers.append(fetcher) }
            partitions[partition]?.fetcher = nil
        }
        buffer = buffer[head...].filter { !stopped.contains(TopicPartition(topic: $0.topic, partition: $0.partition)) }
        head = 0
        defer { spaceWaiters = [] }
        return (fetchers, spaceWaiters)
    }

    /// Stops fetching every partition (for a close); returns the fetchers to cancel.
    mutating func stopFetching() -> [Task<Void, Never>] {
        let (fetchers, freed) = stopFetching(Set(partitions.keys))
        for waiter in freed { waiter.resume() }
        return fetchers
    }

    /// Ends the consumer: iteration finishes, every waiter is woken. Returns fetchers to cancel.
    mutating func stopAll() -> [Task<Void, Never>] {
        let fetchers = stopFetching()
        isStopped = true
        partitions = [:]
        takeReader()?.resume()
        return fetchers
    }
}
