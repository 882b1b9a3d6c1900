import SpoolWire

/// A fetch for the consumer to send: `partition` from `offset`, with the request's correlation
/// id (only the reply to the partition's fetch out counts, and a revocation can cancel it) and
/// the partition's epoch (a retry scheduled for an earlier assignment is dropped).
struct FetchOrder: Equatable {
    let partition: TopicPartition
    let offset: Int64
    let epoch: Int
    let requestID: UInt64
}

/// Where the fetching of one partition stands. Exactly one of: a fetch out, a pause for room, a
/// pause for a retry, or stopped; so a partition never has two fetches out.
enum FetchPhase: Equatable {
    /// Fetch `requestID` is out.
    case inFlight(requestID: UInt64)
    /// The buffer is full: the next fetch goes when the handler makes room.
    case waitingForRoom
    /// A retriable failure: the next fetch goes when the backoff ends (``ConsumerState/retryDue(_:epoch:actions:)``).
    case backingOff
    /// Revoked or closed: no more fetches.
    case stopped
}

/// Where a ``Consumer`` stands on one partition it owns.
struct PartitionProgress {
    /// Counts assignments: a retry scheduled under another epoch (an earlier assignment) is dropped.
    let epoch: Int
    /// The offset the next fetch starts at.
    var position: Int64
    var phase: FetchPhase
    var backoff = Backoff()
    /// The offset after the last processed record; nil before the first.
    var processed: Int64?
    /// The offset last committed (or found committed at assignment); nil if none.
    var committed: Int64?

    mutating func noteCommitted(_ offset: Int64) {
        committed = max(committed ?? offset, offset)
    }
}

/// What the consumer does after a transition, outside the lock: fetches to send, fetches to
/// cancel, waiters to wake, a retry to schedule, and what to log.
struct ConsumerActions {
    var fetches: [FetchOrder] = []
    var cancellations: [UInt64] = []
    var wakeups: [CheckedContinuation<Void, Never>] = []
    /// Call ``ConsumerState/retryDue(_:epoch:actions:)`` for this partition and epoch after the wait.
    var retries: [(partition: TopicPartition, epoch: Int, after: Duration)] = []
    /// A partition moved to its reset position after an out-of-range fetch (logged).
    var resets: [(partition: TopicPartition, from: Int64, to: Int64)] = []
    /// The consumer failed for good (logged; the reader gets it).
    var failure: SpoolError?
}

/// What ``ConsumerState/takeRecords(upTo:maxBuffered:actions:)`` found.
enum TakeOutcome {
    /// The next records, in buffer order (at least one).
    case records(ArraySlice<SpoolRecord>)
    /// Nothing buffered: wait.
    case empty
    /// The consumer was closed.
    case finished
    /// The consumer failed.
    case failed(SpoolError)
}

/// The read side of a ``Consumer`` as a state machine, guarded by its mutex: the owned
/// partitions and their fetches, the prefetch buffer, and who waits for what. Each transition
/// changes the state and returns, in ``ConsumerActions``, what to do outside the lock; nothing
/// here sleeps, polls or sends.
///
/// Invariants: a partition has at most one fetch out; records of a partition enter the buffer
/// in offset order, only from the reply to the partition's fetch out; the buffer never holds more than
/// `maxBuffered` records; a partition paused for room is resumed by the take that makes room.
struct ConsumerState {
    var memberID = ""
    var generation: Int32 = -1
    var partitions: [TopicPartition: PartitionProgress] = [:]
    /// Fetched records not yet returned, in arrival order (per partition in offset order).
    private var buffer: [SpoolRecord] = []
    private var head = 0
    /// The records returned last, until the reader asks for more (then they are processed).
    private var lastDelivered: ArraySlice<SpoolRecord> = []
    /// The iterating task, waiting for a record.
    private var waitingReader: CheckedContinuation<Void, Never>?
    /// A revocation waiting for the handler to let go of a record of these partitions.
    private var handlerWaiter: (partitions: Set<TopicPartition>, continuation: CheckedContinuation<Void, Never>)?
    private(set) var failure: SpoolError?
    /// True once the consumer closed: no more records, no more fetches.
    private(set) var isStopped = false
    private var epochCounter = 0
    private let nextRequestID: @Sendable () -> UInt64

    /// `nextRequestID` gives the correlation id of each fetch (unique on the client's connection).
    init(nextRequestID: @escaping @Sendable () -> UInt64) {
        self.nextRequestID = nextRequestID
    }

    var bufferedCount: Int { buffer.count - head }

    // MARK: Fetching

    /// Starts consuming `partition` at `offset` under a new epoch: a fetch at once, or a pause
    /// while the buffer is full.
    mutating func start(_ partition: TopicPartition, at offset: Int64, committed: Int64?, maxBuffered: Int, actions: inout ConsumerActions) {
        guard !isStopped else { return }
        epochCounter += 1
        partitions[partition] = PartitionProgress(epoch: epochCounter, position: offset, phase: .waitingForRoom, committed: committed)
        if bufferedCount < maxBuffered { sendFetch(partition, actions: &actions) }
    }

    /// True while `order` is the fetch out for its partition: a reply to any other (of an earlier
    /// assignment, or cancelled) changes nothing.
    private func isOut(_ order: FetchOrder) -> Bool {
        !isStopped && partitions[order.partition]?.phase == .inFlight(requestID: order.requestID)
    }

    /// Fetch `order` returned `records`: buffers those that fit (the rest is fetched again
    /// later), wakes the reader, and fetches on, or pauses while the buffer is full.
    mutating func fetched(_ order: FetchOrder, _ fetched: FetchedRecords, maxBuffered: Int, actions: inout ConsumerActions) {
        guard isOut(order) else { return }
        let partition = order.partition
        let records = fetched.records
        partitions[partition]!.backoff.reset()
        let taken = min(records.count, max(maxBuffered - bufferedCount, 0))
        if taken > 0 {
            buffer.append(contentsOf: records.prefix(taken))
            partitions[partition]!.position = records[taken - 1].offset + 1
            wakeReader(actions: &actions)
        }
        // Past offsets a compacted batch covers without records.
        if taken == records.count { partitions[partition]!.position = max(partitions[partition]!.position, fetched.nextOffset) }
        if bufferedCount < maxBuffered {
            sendFetch(partition, actions: &actions)
        } else {
            partitions[partition]!.phase = .waitingForRoom
        }
    }

    /// Fetch `order` failed: a cancelled or closed one stops the partition, an out-of-range one
    /// moves to the reset position (when `reset` allows one), a retriable one backs off, any
    /// other fails the consumer.
    mutating func fetchFailed(_ order: FetchOrder, error: SpoolError, reset: ConsumerConfiguration.OffsetReset, actions: inout ConsumerActions) {
        guard isOut(order) else { return }
        let partition = order.partition
        if error.code == .cancelled || error.code == .clientClosed {
            partitions[partition]!.phase = .stopped
        } else if error.code == .offsetOutOfRange, reset != .error,
                  let position = error.details[reset == .earliest ? "earliest" : "latest"] {
            actions.resets.append((partition, partitions[partition]!.position, position))
            partitions[partition]!.position = position
            sendFetch(partition, actions: &actions)
        } else if error.isRetriable {
            partitions[partition]!.phase = .backingOff
            actions.retries.append((partition, order.epoch, partitions[partition]!.backoff.next()))
        } else {
            fail(error, actions: &actions)
        }
    }

    /// The backoff of `partition` under `epoch` ended: fetch again (unless it moved on meanwhile).
    mutating func retryDue(_ partition: TopicPartition, epoch: Int, actions: inout ConsumerActions) {
        guard !isStopped, partitions[partition]?.epoch == epoch, partitions[partition]!.phase == .backingOff else { return }
        sendFetch(partition, actions: &actions)
    }

    private mutating func sendFetch(_ partition: TopicPartition, actions: inout ConsumerActions) {
        let id = nextRequestID()
        partitions[partition]!.phase = .inFlight(requestID: id)
        actions.fetches.append(FetchOrder(partition: partition, offset: partitions[partition]!.position, epoch: partitions[partition]!.epoch,
                                          requestID: id))
    }

    /// Stops fetching `stopped` (their fetches out are cancelled) and drops their buffered records.
    mutating func stopFetching(_ stopped: Set<TopicPartition>, actions: inout ConsumerActions) {
        for partition in stopped {
            if case .inFlight(let id) = partitions[partition]?.phase { actions.cancellations.append(id) }
            partitions[partition]?.phase = .stopped
        }
        buffer = buffer[head...].filter { !stopped.contains($0.topicPartition) }
        head = 0
    }

    // MARK: Delivery

    /// Marks the records returned last processed and returns the next ones buffered (up to
    /// `limit`), if any; resumes the partitions paused for room once there is room.
    mutating func takeRecords(upTo limit: Int, maxBuffered: Int, actions: inout ConsumerActions) -> TakeOutcome {
        markLastDeliveredProcessed(actions: &actions)
        if let failure { return .failed(failure) }
        if isStopped { return .finished }
        guard head < buffer.count else { return .empty }
        let taken = buffer[head..<min(head + max(limit, 1), buffer.count)]
        head = taken.endIndex
        if head == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024, head * 2 >= buffer.count {
            buffer.removeFirst(head)
            head = 0
        }
        lastDelivered = taken
        if bufferedCount < maxBuffered {
            for (partition, progress) in partitions where progress.phase == .waitingForRoom { sendFetch(partition, actions: &actions) }
        }
        return .records(taken)
    }

    /// Parks the reader until a record arrives or the consumer ends; false (not parked) if
    /// ``takeRecords(upTo:maxBuffered:actions:)`` would not return `.empty` now.
    mutating func park(_ reader: CheckedContinuation<Void, Never>) -> Bool {
        guard bufferedCount == 0, !isStopped, failure == nil else { return false }
        waitingReader = reader
        return true
    }

    /// The parked reader, taken out (for a cancelled iteration).
    mutating func unparkReader() -> CheckedContinuation<Void, Never>? {
        defer { waitingReader = nil }
        return waitingReader
    }

    private mutating func wakeReader(actions: inout ConsumerActions) {
        if let reader = unparkReader() { actions.wakeups.append(reader) }
    }

    mutating func markLastDeliveredProcessed(actions: inout ConsumerActions) {
        guard !lastDelivered.isEmpty else { return }
        for record in lastDelivered { markProcessed(record) }
        if let waiter = handlerWaiter, lastDelivered.contains(where: { waiter.partitions.contains($0.topicPartition) }) {
            handlerWaiter = nil
            actions.wakeups.append(waiter.continuation)
        }
        lastDelivered = []
    }

    mutating func markProcessed(_ record: SpoolRecord) {
        let partition = record.topicPartition
        guard partitions[partition] != nil else { return }
        partitions[partition]!.processed = max(partitions[partition]!.processed ?? 0, record.offset + 1)
    }

    /// Parks a revocation until the handler lets go of its records of `revoked`; false (not
    /// parked) if it holds none.
    mutating func waitForHandler(_ revoked: Set<TopicPartition>, _ continuation: CheckedContinuation<Void, Never>) -> Bool {
        guard lastDelivered.contains(where: { revoked.contains($0.topicPartition) }), handlerWaiter == nil else { return false }
        handlerWaiter = (revoked, continuation)
        return true
    }

    /// The parked revocation, taken out (when its wait timed out).
    mutating func takeHandlerWaiter() -> CheckedContinuation<Void, Never>? {
        defer { handlerWaiter = nil }
        return handlerWaiter?.continuation
    }

    // MARK: Commits and the end

    /// The processed offsets not committed yet, of `only` (nil: every partition).
    func uncommitted(in only: Set<TopicPartition>?) -> [CommittedOffset] {
        partitions.compactMap { partition, progress in
            guard only?.contains(partition) ?? true, let processed = progress.processed, processed != progress.committed else { return nil }
            return CommittedOffset(partition: partition, offset: processed)
        }.sorted { $0.partition < $1.partition }
    }

    /// Fails the consumer: the reader gets `error`, fetching stops.
    mutating func fail(_ error: SpoolError, actions: inout ConsumerActions) {
        guard failure == nil else { return }
        failure = error
        actions.failure = error
        stopFetching(Set(partitions.keys), actions: &actions)
        wakeReader(actions: &actions)
    }

    /// Ends the consumer: iteration finishes, fetches are cancelled, every waiter is woken.
    mutating func stopAll(actions: inout ConsumerActions) {
        stopFetching(Set(partitions.keys), actions: &actions)
        isStopped = true
        partitions = [:]
        wakeReader(actions: &actions)
        if let waiter = takeHandlerWaiter() { actions.wakeups.append(waiter) }
    }
}

extension SpoolRecord {
    var topicPartition: TopicPartition { TopicPartition(topic: topic, partition: partition) }
}
