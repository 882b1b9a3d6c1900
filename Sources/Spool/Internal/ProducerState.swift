import SpoolWire

/// A topic the producer has resolved: where its partitions' slots start, how many it has, and
/// the partition unkeyed records stick to until its batch closes.
struct ProducerTopic {
    let name: String
    let firstSlot: Int
    let partitionCount: Int32
    var stickyPartition: Int32
}

/// The batches of one partition, oldest first: `inFlight`, then `ready`, then `open`.
///
/// Invariants: batch ids and creation times increase from `inFlight` to `open`; `inFlight` holds
/// at most `maxInFlightPerPartition` batches, in the order they were first sent, each stamped
/// with consecutive sequences (`nextSequence` follows the last); outcomes are acted on strictly
/// from the front, so acknowledgements, failures and retries happen in partition order.
struct PartitionQueue {
    let topicIndex: Int
    let topic: String
    let partition: Int32
    /// The encoded ``ProduceRequest`` (the same for every batch of the partition).
    let requestBody: [UInt8]
    var open: ProducerBatch?
    var ready: [ProducerBatch] = []
    var inFlight: [ProducerBatch] = []
    /// The sequence the next stamped batch gets.
    var nextSequence: Int32 = 0
    /// The epoch stamped into this partition's batches: the broker's, bumped when the sequence
    /// would overflow (the broker starts a fresh sequence for a new epoch).
    var epoch: Int16?
    /// The front batch failed; every unsettled in-flight batch is sent again once none is awaiting
    /// a reply and `resendAt` has passed.
    var retrying = false
    var resendAt: UInt64?
    /// Nanoseconds to wait before the next retry.
    var backoff: UInt64
    /// Why the broker last refused or failed a batch of this partition (a full disk, a lost
    /// connection), until one is stored: the cause behind the batches it then refuses as out of
    /// order, which a batch that expires reports instead of "out of order".
    var lastRefusal: SpoolError?
    /// Listed in ``ProducerState/active``.
    var isActive = false

    var isEmpty: Bool { open == nil && ready.isEmpty && inFlight.isEmpty }
    var isDrained: Bool { !inFlight.contains { $0.awaitingReply } }
    /// The oldest unsettled batch's id.
    var oldestBatchID: UInt64? { inFlight.first?.id ?? ready.first?.id ?? open?.id }
    var oldestCreation: UInt64? { inFlight.first?.createdAt ?? ready.first?.createdAt ?? open?.createdAt }
}

/// The configuration's durations in nanoseconds of ``MonotonicClock``.
struct ProducerTiming {
    let linger: UInt64
    let deliveryTimeout: UInt64
    let retryBackoff: UInt64
    let maxRetryBackoff: UInt64

    init(_ configuration: ProducerConfiguration) {
        linger = configuration.linger.clampedNanoseconds
        deliveryTimeout = configuration.deliveryTimeout.clampedNanoseconds
        retryBackoff = configuration.retryBackoff.clampedNanoseconds
        maxRetryBackoff = configuration.maxRetryBackoff.clampedNanoseconds
    }
}

/// How the producer stamps batches.
enum ProducerIdentity {
    /// Not asked yet, or asking failed; ask (again) at `retryAt`.
    case unknown(retryAt: UInt64?)
    case requesting
    case known(id: Int64, epoch: Int16)
    /// Idempotence is off (configured, or the broker does not support it).
    case disabled
}

/// A caller waiting for room under ``ProducerConfiguration/maxBytesInFlight``.
struct BlockedRecord {
    enum Waiter {
        case enqueue(CheckedContinuation<Result<Void, SpoolError>, Never>)
        case send(CheckedContinuation<Result<PublishResult, SpoolError>, Never>)
    }
    let id: UInt64
    let topicIndex: Int
    let partition: Int32?
    let key: [UInt8]?
    let value: [UInt8]
    let headers: [RecordHeader]
    let timestamp: Int64
    let size: Int
    let waiter: Waiter
}

/// One send of one batch, performed by the loop outside the lock.
struct Transmission: Sendable {
    let slot: Int
    let batchID: UInt64
    let requestBody: [UInt8]
    let batch: [UInt8]
}

/// Side effects decided under the lock, run after it is released.
struct ProducerActions {
    var published: [(CheckedContinuation<Result<PublishResult, SpoolError>, Never>, Result<PublishResult, SpoolError>)] = []
    var buffered: [(CheckedContinuation<Result<Void, SpoolError>, Never>, Result<Void, SpoolError>)] = []
    var flushed: [CheckedContinuation<Void, Never>] = []
    var loopWakeup: LoopWaiter?
    var logs: [ProducerLog] = []

    var isEmpty: Bool { published.isEmpty && buffered.isEmpty && flushed.isEmpty && loopWakeup == nil && logs.isEmpty }
}

/// Something worth a log line, written outside the lock.
enum ProducerLog {
    case retrying(topic: String, partition: Int32, batches: Int, attempt: Int, error: SpoolError, delay: UInt64)
    case resequenced(topic: String, partition: Int32, from: Int32, to: Int32)
    case expired(SpoolError)
    case identityUnsupported
    case identityFailed(SpoolError)
}

/// What the loop does after one look at the state.
struct LoopPlan {
    var actions = ProducerActions()
    var transmissions: [Transmission] = []
    var requestIdentity = false
    /// When to look again if nothing wakes the loop sooner.
    var deadline: UInt64?
    var exit = false
}

/// Everything a ``Producer`` knows, changed only under its lock. Its mutating methods decide and
/// return the side effects (resume this caller, wake the loop, send these batches); they never
/// block or await.
struct ProducerState {
    let configuration: ProducerConfiguration
    let timing: ProducerTiming
    /// The topic of the last record and its index: most records go where the previous one went.
    var lastTopic: (name: String, index: Int)?
    var topicIndex: [String: Int] = [:]
    var topics: [ProducerTopic] = []
    var partitions: [PartitionQueue] = []
    /// Slots with at least one unsettled batch.
    var active: [Int] = []
    var identity: ProducerIdentity
    var identityBackoff: UInt64
    /// Record bytes buffered or in flight.
    var bufferedBytes = 0
    var blocked: [BlockedRecord] = []
    var nextBatchID: UInt64 = 1
    /// Close every open batch at the next look (flush, close).
    var flushRequested = false
    var flushWaiters: [(mark: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
    var closing = false
    /// The first failure of an `enqueue`d record since the last flush, and how many failed.
    var failure: (first: SpoolError, records: Int)?

    // The loop's bookkeeping.
    var loopTask: Task<Void, Never>?
    var loopWaiter: LoopWaiter?
    var wakePending = false
    /// When the loop means to look again by itself (nil: only when woken).
    var plannedDeadline: UInt64?

    init(configuration: ProducerConfiguration) {
        self.configuration = configuration
        identity = configuration.idempotent ? .unknown(retryAt: nil) : .disabled
        timing = ProducerTiming(configuration)
        identityBackoff = timing.retryBackoff
    }

    // MARK: Topics

    /// Registers a topic's partitions (idempotent). Returns its index.
    @discardableResult
    mutating func addTopic(_ name: String, partitionCount: Int32) -> Int {
        if let index = topicIndex[name] { return index }
        let index = topics.count
        let count = max(partitionCount, 1)
        topics.append(ProducerTopic(name: name, firstSlot: partitions.count, partitionCount: count,
                                    stickyPartition: Int32.random(in: 0..<count)))
        for partition in 0..<count {
            partitions.append(PartitionQueue(topicIndex: index, topic: name, partition: partition,
                                             requestBody: ProduceRequest(topic: name, partition: partition).encoded(),
                                             backoff: timing.retryBackoff))
        }
        topicIndex[name] = index
        return index
    }

    /// The slot for a record: `partition` if given, else the key's partition, else the topic's
    /// sticky partition.
    @inline(__always)
    func slot(topic index: Int, partition: Int32?, key: [UInt8]?) -> Result<Int, SpoolError> {
        let firstSlot = topics[index].firstSlot
        let partitionCount = topics[index].partitionCount
        if let partition {
            guard partition >= 0, partition < partitionCount else {
                return .failure(SpoolError(.unknownPartition, "topic '\(topics[index].name)' has no partition \(partition) (it has \(partitionCount))"))
            }
            return .success(firstSlot + Int(partition))
        }
        if partitionCount == 1 { return .success(firstSlot) }
        if let key { return .success(firstSlot + Int(Partitioner.partition(forKey: key, partitionCount: partitionCount))) }
        return .success(firstSlot + Int(topics[index].stickyPartition))
    }

    // MARK: Buffering records

    enum AppendAttempt {
        case appended
        case unknownTopic
        case mustWait
        case failed(SpoolError)
    }

    @inline(__always)
    func hasRoom(for size: Int) -> Bool {
        bufferedBytes == 0 || bufferedBytes + size <= configuration.maxBytesInFlight
    }

    /// Buffers a record if there is room and nobody waits before it.
    mutating func tryAppend(topic: String, partition: Int32?, key: [UInt8]?, value: [UInt8], headers: [RecordHeader],
                            timestamp: Int64, size: Int, actions: inout ProducerActions) -> AppendAttempt {
        guard !closing else { return .failed(Self.closedError) }
        let index: Int
        if let lastTopic, lastTopic.name == topic {
            index = lastTopic.index
        } else {
            guard let found = topicIndex[topic] else { return .unknownTopic }
            index = found
            lastTopic = (topic, found)
        }
        guard blocked.isEmpty, hasRoom(for: size) else { return .mustWait }
        switch slot(topic: index, partition: partition, key: key) {
        case .success(let slot):
            append(slot: slot, explicitPartition: partition != nil, timestamp: timestamp, key: key, value: value, headers: headers, size: size,
                   waiter: nil, actions: &actions)
            return .appended
        case .failure(let error):
            return .failed(error)
        }
    }

    /// Buffers a record now if possible, else queues the caller until there is room (or fails
    /// it with "cancelled" if `waitUnlessCancelled`'s task is cancelled). The topic must be registered.
    mutating func appendOrBlock(_ record: BlockedRecord, waitUnlessCancelled cancelled: Bool = false, actions: inout ProducerActions) {
        guard !closing else { return Self.resume(record.waiter, with: Self.closedError, actions: &actions) }
        if blocked.isEmpty, hasRoom(for: record.size) {
            admit(record, actions: &actions)
        } else if cancelled {
            Self.resume(record.waiter, with: Self.cancelledError, actions: &actions)
        } else {
            blocked.append(record)
        }
    }

    /// Removes a waiting caller whose task was cancelled (nothing happens if it was buffered already).
    mutating func cancelBlocked(id: UInt64, actions: inout ProducerActions) {
        guard let index = blocked.firstIndex(where: { $0.id == id }) else { return }
        let record = blocked.remove(at: index)
        Self.resume(record.waiter, with: Self.cancelledError, actions: &actions)
        admitBlocked(actions: &actions)  // the ones behind it may fit
    }

    private mutating func admit(_ record: BlockedRecord, actions: inout ProducerActions) {
        switch slot(topic: record.topicIndex, partition: record.partition, key: record.key) {
        case .success(let slot):
            switch record.waiter {
            case .enqueue(let continuation):
                append(slot: slot, explicitPartition: record.partition != nil, timestamp: record.timestamp, key: record.key, value: record.value,
                       headers: record.headers, size: record.size, waiter: nil, actions: &actions)
                actions.buffered.append((continuation, .success(())))
            case .send(let continuation):
                append(slot: slot, explicitPartition: record.partition != nil, timestamp: record.timestamp, key: record.key, value: record.value,
                       headers: record.headers, size: record.size, waiter: continuation, actions: &actions)
            }
        case .failure(let error):
            Self.resume(record.waiter, with: error, actions: &actions)
        }
    }

    /// Admits waiting callers in order while there is room.
    private mutating func admitBlocked(actions: inout ProducerActions) {
        guard !blocked.isEmpty else { return }
        var admitted = 0
        while admitted < blocked.count, hasRoom(for: blocked[admitted].size) {
            let record = blocked[admitted]
            admitted += 1
            admit(record, actions: &actions)
        }
        if admitted > 0 { blocked.removeFirst(admitted) }
    }

    /// Buffers `records` as one batch of their own, after everything buffered for the partition
    /// before, sent with `condition` (a conditional append); `waiter` gets the batch's outcome.
    /// Never waits for room: the batch is bounded by the client's batch limit, checked before.
    mutating func appendConditional(topicIndex index: Int, key: [UInt8], records: [OutgoingRecord], timestamp: Int64, condition: KeyCondition,
                                    waiter: CheckedContinuation<Result<PublishResult, SpoolError>, Never>, actions: inout ProducerActions) {
        guard !closing else { return Self.resume(.send(waiter), with: Self.closedError, actions: &actions) }
        let slot: Int
        switch self.slot(topic: index, partition: nil, key: key) {
        case .success(let found): slot = found
        case .failure(let error): return Self.resume(.send(waiter), with: error, actions: &actions)
        }
        closeOpenBatch(slot: slot, actions: &actions)
        openBatch(slot: slot, actions: &actions)
        for record in records {
            _ = Self.appendToOpenBatch(&partitions[slot], timestamp: record.timestamp ?? timestamp, key: record.key ?? key, value: record.value,
                                       headers: record.headers, size: .min, waiter: nil, batchBytes: configuration.batchBytes,
                                       bufferedBytes: &bufferedBytes)
        }
        partitions[slot].open!.enqueuedCount = 0
        partitions[slot].open!.waiters = [SendWaiter(index: 0, count: records.count, continuation: waiter)]
        partitions[slot].open!.requestBody = ProduceRequest(topic: partitions[slot].topic, partition: partitions[slot].partition,
                                                            condition: condition).encoded()
        closeOpenBatch(slot: slot, actions: &actions)
    }

    /// Appends one record to the slot's open batch, closing it first if the record would not fit
    /// and after if it is full.
    @inline(__always)
    private mutating func append(slot: Int, explicitPartition: Bool, timestamp: Int64, key: [UInt8]?, value: [UInt8], headers: [RecordHeader], size: Int,
                                 waiter: CheckedContinuation<Result<PublishResult, SpoolError>, Never>?, actions: inout ProducerActions) {
        let batchBytes = configuration.batchBytes
        var slot = slot
        var step = Self.appendToOpenBatch(&partitions[slot], timestamp: timestamp, key: key, value: value, headers: headers, size: size,
                                          waiter: waiter, batchBytes: batchBytes, bufferedBytes: &bufferedBytes)
        if case .noRoom = step {
            if partitions[slot].open != nil {
                let topicIndex = partitions[slot].topicIndex
                let sticky = key == nil && !explicitPartition && topics[topicIndex].stickyPartition == partitions[slot].partition
                closeOpenBatch(slot: slot, actions: &actions)
                if sticky {
                    // The sticky partition's batch is full: this record starts the next partition's.
                    slot = topics[topicIndex].firstSlot + Int(topics[topicIndex].stickyPartition)
                    step = Self.appendToOpenBatch(&partitions[slot], timestamp: timestamp, key: key, value: value, headers: headers, size: size,
                                                  waiter: waiter, batchBytes: batchBytes, bufferedBytes: &bufferedBytes)
                    if case .noRoom = step { closeOpenBatch(slot: slot, actions: &actions) }
                }
            }
            if case .noRoom = step {
                openBatch(slot: slot, actions: &actions)
                step = Self.appendToOpenBatch(&partitions[slot], timestamp: timestamp, key: key, value: value, headers: headers, size: .min,
                                              waiter: waiter, batchBytes: batchBytes, bufferedBytes: &bufferedBytes)
            }
        }
        if case .appendedAndFull = step { closeOpenBatch(slot: slot, actions: &actions) }
    }

    enum AppendStep { case appended, appendedAndFull, noRoom }

    /// Appends to the open batch if there is one with room for `size` more bytes.
    @inline(__always)
    private static func appendToOpenBatch(_ queue: inout PartitionQueue, timestamp: Int64, key: [UInt8]?, value: [UInt8], headers: [RecordHeader],
                                          size: Int, waiter: CheckedContinuation<Result<PublishResult, SpoolError>, Never>?, batchBytes: Int,
                                          bufferedBytes: inout Int) -> AppendStep {
        guard queue.open != nil, size == .min || queue.open!.builder!.byteCount + size <= batchBytes else { return .noRoom }
        let before = queue.open!.builder!.byteCount
        queue.open!.builder!.append(timestamp: timestamp, key: key, value: value, headers: headers)
        let after = queue.open!.builder!.byteCount
        queue.open!.accountedBytes += after - before
        bufferedBytes += after - before
        if let waiter {
            queue.open!.waiters.append(SendWaiter(index: queue.open!.recordCount, continuation: waiter))
        } else {
            queue.open!.enqueuedCount += 1
        }
        queue.open!.recordCount += 1
        return after >= batchBytes ? .appendedAndFull : .appended
    }

    private mutating func openBatch(slot: Int, actions: inout ProducerActions) {
        let now = MonotonicClock.now()
        let id = nextBatchID
        nextBatchID += 1
        partitions[slot].open = ProducerBatch(id: id, slot: slot, createdAt: now, capacity: min(configuration.batchBytes, 16 * 1024))
        if !partitions[slot].isActive {
            partitions[slot].isActive = true
            active.append(slot)
        }
        if plannedDeadline.map({ now.saturatingAdd(timing.linger) < $0 }) ?? true { wakeLoop(&actions) }
    }

    /// Moves the open batch to `ready`; unkeyed records of the topic move on to the next partition.
    private mutating func closeOpenBatch(slot: Int, actions: inout ProducerActions) {
        guard let batch = partitions[slot].open.take() else { return }
        partitions[slot].ready.append(batch)
        let index = partitions[slot].topicIndex
        if topics[index].stickyPartition == partitions[slot].partition {
            topics[index].stickyPartition = (topics[index].stickyPartition + 1) % topics[index].partitionCount
        }
        if !partitions[slot].retrying, partitions[slot].inFlight.count < configuration.maxInFlightPerPartition { wakeLoop(&actions) }
    }

    // MARK: The loop

    /// One look at everything: expire what is past its delivery timeout, close batches whose
    /// linger passed (or all of them, on flush or close), send what may be sent, resend what
    /// must be resent, and say when to look again.
    mutating func plan(now: UInt64) -> LoopPlan {
        var plan = LoopPlan()
        var deadline: UInt64?
        func consider(_ instant: UInt64) { deadline = min(deadline ?? instant, instant) }

        let stamp: (id: Int64, epoch: Int16)?
        switch identity {
        case .known(let id, let epoch): stamp = (id, epoch)
        case .disabled: stamp = (-1, -1)
        case .unknown, .requesting: stamp = nil
        }
        var needsIdentity = false
        var index = 0
        while index < active.count {
            let slot = active[index]
            expire(slot: slot, now: now, actions: &plan.actions)
            if let created = partitions[slot].open?.createdAt {
                let due = created.saturatingAdd(timing.linger)
                if flushRequested || closing {
                    closeOpenBatch(slot: slot, actions: &plan.actions)
                } else if now < due {
                    consider(due)
                } else if stamp != nil, !partitions[slot].retrying, partitions[slot].ready.isEmpty,
                          partitions[slot].inFlight.count < configuration.maxInFlightPerPartition {
                    closeOpenBatch(slot: slot, actions: &plan.actions)
                }
                // Else the batch keeps filling until it can leave: an answer or the producer id wakes the loop.
            }
            if partitions[slot].retrying {
                if partitions[slot].isDrained {
                    let resendAt = partitions[slot].resendAt ?? now
                    if now >= resendAt { resend(slot: slot, plan: &plan) } else { consider(resendAt) }
                }
            }
            if let stamp {
                if !partitions[slot].retrying, !partitions[slot].ready.isEmpty { send(slot: slot, stamp: stamp, plan: &plan) }
            } else if !partitions[slot].isEmpty {
                needsIdentity = true
            }
            if let created = partitions[slot].oldestCreation { consider(created.saturatingAdd(timing.deliveryTimeout)) }
            if partitions[slot].isEmpty {
                partitions[slot].isActive = false
                active.swapAt(index, active.count - 1)
                active.removeLast()
            } else {
                index += 1
            }
        }
        flushRequested = false
        if needsIdentity, case .unknown(let retryAt) = identity {
            if let retryAt, now < retryAt {
                consider(retryAt)
            } else {
                identity = .requesting
                plan.requestIdentity = true
            }
        }
        admitBlocked(actions: &plan.actions)
        settleFlushWaiters(actions: &plan.actions)
        plan.exit = closing && active.isEmpty && blocked.isEmpty
        plan.deadline = deadline
        plannedDeadline = deadline
        return plan
    }

    /// For a producer without linger: closes the open batches that may leave now and sends them,
    /// as the loop's next look would, so that the caller's own thread queues them at once rather
    /// than waking the loop to do it (one thread hop less per record). Batches that must wait (a
    /// retry, a full window, no producer id yet), deadlines and everything else stay the loop's.
    mutating func sendWithoutWaiting(actions: inout ProducerActions) -> [Transmission] {
        guard timing.linger == 0 else { return [] }
        let stamp: (id: Int64, epoch: Int16)
        switch identity {
        case .known(let id, let epoch): stamp = (id, epoch)
        case .disabled: stamp = (-1, -1)
        case .unknown, .requesting: return []
        }
        var plan = LoopPlan()
        for slot in active where partitions[slot].open != nil && !partitions[slot].retrying && partitions[slot].ready.isEmpty
            && partitions[slot].inFlight.count < configuration.maxInFlightPerPartition {
            closeOpenBatch(slot: slot, actions: &actions)
            send(slot: slot, stamp: stamp, plan: &plan)
        }
        return plan.transmissions
    }

    /// Sends ready batches while the partition has in-flight room, stamping each once.
    private mutating func send(slot: Int, stamp: (id: Int64, epoch: Int16), plan: inout LoopPlan) {
        while partitions[slot].inFlight.count < configuration.maxInFlightPerPartition, !partitions[slot].ready.isEmpty {
            var batch = partitions[slot].ready.removeFirst()
            if stamp.id >= 0 {
                let count = Int32(batch.recordCount)
                var epoch = partitions[slot].epoch ?? stamp.epoch
                if partitions[slot].nextSequence > Int32.max - count {
                    // The broker compares sequences without wrapping; start a new epoch (whose
                    // sequence starts at 0) once nothing of the old one is in flight.
                    guard partitions[slot].inFlight.isEmpty else {
                        partitions[slot].ready.insert(batch, at: 0)
                        return
                    }
                    epoch = epoch == Int16.max ? 0 : epoch + 1
                    partitions[slot].nextSequence = 0
                }
                partitions[slot].epoch = epoch
                batch.finish(producerID: stamp.id, epoch: epoch, baseSequence: partitions[slot].nextSequence)
                partitions[slot].nextSequence += count
            } else {
                batch.finish(producerID: -1, epoch: -1, baseSequence: -1)
            }
            batch.attempts = 1
            batch.awaitingReply = true
            plan.transmissions.append(Transmission(slot: slot, batchID: batch.id, requestBody: batch.requestBody ?? partitions[slot].requestBody,
                                                   batch: batch.bytes))
            partitions[slot].inFlight.append(batch)
        }
    }

    /// Sends again, in order and with their sequences, every in-flight batch not yet settled.
    private mutating func resend(slot: Int, plan: inout LoopPlan) {
        partitions[slot].retrying = false
        partitions[slot].resendAt = nil
        for position in partitions[slot].inFlight.indices {
            switch partitions[slot].inFlight[position].outcome {
            case .stored?, .rejected?:
                continue  // settled: acknowledged or failed in turn when it reaches the front
            case .outOfOrder?, .retry?, nil:
                partitions[slot].inFlight[position].outcome = nil
                partitions[slot].inFlight[position].awaitingReply = true
                partitions[slot].inFlight[position].attempts += 1
                let batch = partitions[slot].inFlight[position]
                plan.transmissions.append(Transmission(slot: slot, batchID: batch.id, requestBody: batch.requestBody ?? partitions[slot].requestBody,
                                                       batch: batch.bytes))
            }
        }
    }

    /// Fails the partition's batches whose delivery timeout passed, oldest first.
    private mutating func expire(slot: Int, now: UInt64, actions: inout ProducerActions) {
        let timeout = timing.deliveryTimeout
        guard let oldest = partitions[slot].oldestCreation, now >= oldest.saturatingAdd(timeout) else { return }
        var first: SpoolError?
        var expiredInFlight = false
        while let front = partitions[slot].inFlight.first, now >= front.createdAt.saturatingAdd(timeout) {
            let batch = partitions[slot].inFlight.removeFirst()
            let error = timeoutError(batch)
            fail(batch, with: error, actions: &actions)
            first = first ?? error
            expiredInFlight = true
        }
        if partitions[slot].inFlight.isEmpty {
            partitions[slot].retrying = false
            partitions[slot].resendAt = nil
        } else if expiredInFlight {
            settleFront(slot: slot, now: now, actions: &actions)
        }
        while let front = partitions[slot].ready.first, now >= front.createdAt.saturatingAdd(timeout) {
            let batch = partitions[slot].ready.removeFirst()
            let error = timeoutError(batch)
            fail(batch, with: error, actions: &actions)
            first = first ?? error
        }
        if let created = partitions[slot].open?.createdAt, now >= created.saturatingAdd(timeout), let batch = partitions[slot].open.take() {
            let error = timeoutError(batch)
            fail(batch, with: error, actions: &actions)
            first = first ?? error
        }
        if let first { actions.logs.append(.expired(first)) }
    }

    private func timeoutError(_ batch: ProducerBatch) -> SpoolError {
        let queue = partitions[batch.slot]
        let records = batch.recordCount == 1 ? "1 record" : "\(batch.recordCount) records"
        let attempts = batch.attempts == 1 ? "1 attempt" : "\(batch.attempts) attempts"
        // Out of order means a batch before it failed, and no answer yet means it waits behind one: say why that one failed.
        let ownCause = batch.lastError.map { $0.code != .outOfOrderSequence } ?? false
        let cause = ownCause ? batch.lastError : queue.lastRefusal ?? batch.lastError
        let label = ownCause || queue.lastRefusal == nil ? "last error" : "an earlier batch failed"
        let last = cause.map { "; \(label): \($0.code): \($0.message)" } ?? (batch.attempts == 0 ? "; never sent" : "; no reply yet")
        // Failed after the broker refused it: not stored. Awaiting a reply, or after a timeout or a lost connection: in doubt.
        let refused = cause.map(BatchOutcome.storedNothing) ?? false
        let inDoubt = batch.attempts > 0 && (batch.awaitingReply || !refused) ? "; the broker may have stored it" : ""
        return SpoolError(.timedOut, "\(records) for \(queue.topic)/\(queue.partition) not acknowledged within the delivery timeout of \(configuration.deliveryTimeout) (\(attempts)\(last)\(inDoubt))",
                          cause: cause)
    }

    // MARK: Answers

    /// Records the answer to one attempt and settles the partition's front in order.
    mutating func transmitted(slot: Int, batchID: UInt64, result: Result<ProduceResponse, SpoolError>,
                              now: UInt64) -> ProducerActions {
        var actions = ProducerActions()
        guard let position = partitions[slot].inFlight.firstIndex(where: { $0.id == batchID }),
              partitions[slot].inFlight[position].awaitingReply
        else { return actions }  // expired meanwhile
        let outcome = BatchOutcome(result)
        switch outcome {
        case .retry(let error), .rejected(let error):
            partitions[slot].inFlight[position].lastError = error
            partitions[slot].lastRefusal = error
        case .outOfOrder(_, let error):
            partitions[slot].inFlight[position].lastError = error
        case .stored:
            partitions[slot].lastRefusal = nil
        }
        partitions[slot].inFlight[position].awaitingReply = false
        partitions[slot].inFlight[position].outcome = outcome
        settleFront(slot: slot, now: now, actions: &actions)
        let queue = partitions[slot]
        let hasRoom = queue.inFlight.count < configuration.maxInFlightPerPartition
        if (queue.retrying && queue.isDrained)
            || (!queue.retrying && hasRoom && (!queue.ready.isEmpty || queue.open != nil))
            || (closing && queue.isEmpty) {
            wakeLoop(&actions)
        }
        admitBlocked(actions: &actions)
        settleFlushWaiters(actions: &actions)
        return actions
    }

    /// Acts on the outcomes at the front of the partition's in-flight batches, in order, up to
    /// the first one still awaiting its reply or needing a resend.
    private mutating func settleFront(slot: Int, now: UInt64, actions: inout ProducerActions) {
        while let front = partitions[slot].inFlight.first, !front.awaitingReply, let outcome = front.outcome {
            switch outcome {
            case .stored(let baseOffset, let durability):
                let batch = partitions[slot].inFlight.removeFirst()
                succeed(batch, baseOffset: baseOffset, durability: durability, actions: &actions)
                partitions[slot].backoff = timing.retryBackoff
            case .rejected(let error):
                let batch = partitions[slot].inFlight.removeFirst()
                let queue = partitions[slot]
                if queue.inFlight.isEmpty, batch.baseSequence >= 0, batch.epoch == queue.epoch,
                   Int64(batch.baseSequence) + Int64(batch.recordCount) == Int64(queue.nextSequence),
                   BatchOutcome.refusedBeforeStoring(error) {
                    // Nothing later carries a sequence yet, and the broker refused this one before
                    // storing anything: give its sequences back.
                    partitions[slot].nextSequence = batch.baseSequence
                }
                let what = batch.recordCount == 1 ? "1 record" : "\(batch.recordCount) records"
                fail(batch, with: SpoolError(error.code, "producing \(what) to \(queue.topic)/\(queue.partition) failed: \(error.message)",
                                             details: error.details, cause: error.cause ?? error), actions: &actions)
            case .outOfOrder(let expected, let error):
                guard !partitions[slot].retrying else { return }
                var delay = partitions[slot].backoff
                if let expected, expected >= 0, front.baseSequence > expected, front.epoch == partitions[slot].epoch {
                    // The batches before this one that the broker lacks failed or expired here;
                    // none of the unsettled ones is stored, so they move down to close the gap.
                    let gap = front.baseSequence - expected
                    for position in partitions[slot].inFlight.indices where !(partitions[slot].inFlight[position].outcome?.isStored ?? false) {
                        partitions[slot].inFlight[position].restamp(baseSequence: partitions[slot].inFlight[position].baseSequence - gap)
                    }
                    partitions[slot].nextSequence -= gap
                    actions.logs.append(.resequenced(topic: partitions[slot].topic, partition: partitions[slot].partition,
                                                     from: front.baseSequence, to: expected))
                    delay = 0
                }
                enterRetry(slot: slot, now: now, delay: delay, error: error, actions: &actions)
                return
            case .retry(let error):
                guard !partitions[slot].retrying else { return }
                enterRetry(slot: slot, now: now, delay: partitions[slot].backoff, error: error, actions: &actions)
                return
            }
        }
    }

    private mutating func enterRetry(slot: Int, now: UInt64, delay: UInt64, error: SpoolError, actions: inout ProducerActions) {
        partitions[slot].retrying = true
        partitions[slot].resendAt = now.saturatingAdd(delay)
        if delay > 0 {
            partitions[slot].backoff = min(partitions[slot].backoff.saturatingAdd(partitions[slot].backoff), timing.maxRetryBackoff)
        }
        let queue = partitions[slot]
        actions.logs.append(.retrying(topic: queue.topic, partition: queue.partition, batches: queue.inFlight.count,
                                      attempt: queue.inFlight.first?.attempts ?? 0, error: error, delay: delay))
    }

    private mutating func succeed(_ batch: ProducerBatch, baseOffset: Int64, durability: Durability, actions: inout ProducerActions) {
        bufferedBytes -= batch.accountedBytes
        guard !batch.waiters.isEmpty else { return }
        let queue = partitions[batch.slot]
        for waiter in batch.waiters {
            let offset = baseOffset >= 0 ? baseOffset + Int64(waiter.index) : -1
            actions.published.append((waiter.continuation, .success(PublishResult(topic: queue.topic, partition: queue.partition,
                                                                                  baseOffset: offset, count: waiter.count, durability: durability))))
        }
    }

    private mutating func fail(_ batch: ProducerBatch, with error: SpoolError, actions: inout ProducerActions) {
        bufferedBytes -= batch.accountedBytes
        for waiter in batch.waiters { actions.published.append((waiter.continuation, .failure(error))) }
        if batch.enqueuedCount > 0 {
            if let failure {
                self.failure = (failure.first, failure.records + batch.enqueuedCount)
            } else {
                failure = (error, batch.enqueuedCount)
            }
        }
    }

    // MARK: Identity

    /// Records the broker's answer to the producer-id request.
    mutating func identityResolved(_ result: Result<InitProducerIDResponse, SpoolError>, now: UInt64) -> ProducerActions {
        var actions = ProducerActions()
        switch result {
        case .success(let response):
            identity = .known(id: response.producerID, epoch: response.producerEpoch)
        case .failure(let error) where error.code == Self.unsupportedOperation:
            identity = .disabled
            actions.logs.append(.identityUnsupported)
        case .failure(let error) where error.isRetriable || error.code == .cancelled:
            identity = .unknown(retryAt: now.saturatingAdd(identityBackoff))
            identityBackoff = min(identityBackoff.saturatingAdd(identityBackoff), timing.maxRetryBackoff)
        case .failure(let error):
            // Fail what waits for an id; later batches ask again.
            identity = .unknown(retryAt: now.saturatingAdd(identityBackoff))
            identityBackoff = min(identityBackoff.saturatingAdd(identityBackoff), timing.maxRetryBackoff)
            let failure = SpoolError(error.code, "cannot get a producer id for idempotent delivery: \(error.message)", details: error.details,
                                     cause: error)
            for slot in active {
                while !partitions[slot].ready.isEmpty { fail(partitions[slot].ready.removeFirst(), with: failure, actions: &actions) }
            }
            actions.logs.append(.identityFailed(error))
            admitBlocked(actions: &actions)
            settleFlushWaiters(actions: &actions)
        }
        wakeLoop(&actions)
        return actions
    }

    static let unsupportedOperation = SpoolError.Code(ErrorCode.unsupportedOperation)

    // MARK: Flush and close

    /// Sends every batch at once and returns true if the records buffered so far are all settled
    /// already; otherwise `continuation` is resumed when they are.
    mutating func flush(_ continuation: CheckedContinuation<Void, Never>, actions: inout ProducerActions) {
        let mark = nextBatchID - 1
        guard let oldest = oldestUnsettledBatch(), oldest <= mark else {
            actions.flushed.append(continuation)
            return
        }
        flushWaiters.append((mark, continuation))
        flushRequested = true
        wakeLoop(&actions)
    }

    /// Stops accepting records and sends everything at once; the loop ends when all is settled.
    mutating func beginClose(actions: inout ProducerActions) {
        guard !closing else { return }
        closing = true
        flushRequested = true
        wakeLoop(&actions)
    }

    /// The first failure of an `enqueue`d record since the last call, mentioning how many failed.
    mutating func takeFailure() -> SpoolError? {
        guard let failure else { return nil }
        self.failure = nil
        guard failure.records > 1 else { return failure.first }
        var error = failure.first
        error.message = "\(failure.records) enqueued records failed; the first: \(error.message)"
        return error
    }

    private func oldestUnsettledBatch() -> UInt64? {
        var oldest: UInt64?
        for slot in active {
            if let id = partitions[slot].oldestBatchID { oldest = min(oldest ?? id, id) }
        }
        return oldest
    }

    private mutating func settleFlushWaiters(actions: inout ProducerActions) {
        guard !flushWaiters.isEmpty else { return }
        let oldest = oldestUnsettledBatch() ?? .max
        flushWaiters.removeAll { waiter in
            guard waiter.mark < oldest else { return false }
            actions.flushed.append(waiter.continuation)
            return true
        }
    }

    // MARK: Waking the loop

    mutating func wakeLoop(_ actions: inout ProducerActions) {
        if let waiter = loopWaiter {
            loopWaiter = nil
            actions.loopWakeup = waiter
        } else {
            wakePending = true
        }
    }

    static let closedError = SpoolError(.clientClosed, "the producer is closed")
    static let cancelledError = SpoolError(.cancelled, "the task was cancelled while waiting for room in the producer's buffer (maxBytesInFlight)")

    static func resume(_ waiter: BlockedRecord.Waiter, with error: SpoolError, actions: inout ProducerActions) {
        switch waiter {
        case .enqueue(let continuation): actions.buffered.append((continuation, .failure(error)))
        case .send(let continuation): actions.published.append((continuation, .failure(error)))
        }
    }
}
