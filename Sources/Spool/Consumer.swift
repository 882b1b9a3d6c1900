import Foundation
import Logging
import Synchronization
import SpoolWire

/// A member of a consumer group: the records of the partitions the broker assigns it, as an
/// `AsyncSequence`, with committed offsets so that the group resumes where it left off.
///
/// ```swift
/// let consumer = try Consumer(client: client, group: "stock", topics: ["order-created"])
/// for try await record in consumer {
///     try await handle(record)          // at least once: after a crash, records since the last commit come again
/// }
/// await consumer.close()                // commits what was processed and leaves the group
/// ```
///
/// Guarantees:
/// - Records of one partition arrive in offset order; each partition is consumed by one member
///   of the group at a time (the broker hands a partition over only once its old owner released it).
/// - A record counts as processed when the loop asks for the next one (and at ``commit()`` or
///   ``close(countingLastRecord:)``, the last one returned counts too). With automatic commits (the default), the
///   processed offsets are committed every ``ConsumerConfiguration/autoCommitInterval``, before a
///   revoked partition is released, and at ``close(countingLastRecord:)``; so delivery is at least once, and after a
///   crash only records past the last commit come again.
/// - At most ``ConsumerConfiguration/maxBufferedRecords`` records wait in memory; fetching pauses
///   while the handler is behind.
/// - Broker restarts and lost connections are retried with backoff; the member joins again with
///   its id and its partitions, and iteration continues without the caller doing anything.
///   Non-retriable failures (an unknown topic with auto-creation off, ``ConsumerConfiguration/OffsetReset/error``
///   without a committed offset) end the loop by throwing ``SpoolError``.
///
/// Iterate from one task at a time. Thread-safe otherwise.
public final class Consumer: AsyncSequence, Sendable {
    public typealias Element = SpoolRecord

    /// The group.
    public let group: String
    /// The topics consumed.
    public let topics: [String]
    /// The settings in force.
    public let configuration: ConsumerConfiguration
    /// Assignment changes, as they happen (the newest 100 are kept if nobody reads them).
    public let events: AsyncStream<ConsumerEvent>

    let client: SpoolClient
    private let logger: Logger
    private let state = Mutex(ConsumerState())
    private let eventSink: AsyncStream<ConsumerEvent>.Continuation
    private let coordinator = Mutex<Task<Void, Never>?>(nil)

    /// Joins `group` to consume `topics` through `client`; membership starts at once in the
    /// background. Throws ``SpoolError/Code/invalidArgument`` for an empty topic list or a bad name.
    public init(client: SpoolClient, group: String, topics: [String], configuration: ConsumerConfiguration = ConsumerConfiguration(),
                logger: Logger = Logger(label: "spool.consumer")) throws(SpoolError) {
        guard !topics.isEmpty else { throw SpoolError(.invalidArgument, "a consumer needs at least one topic") }
        do {
            _ = try TopicName(group)
        } catch {
            throw SpoolError(.invalidArgument, "invalid group name (group names follow the topic-name rules): \(error.message)")
        }
        for topic in topics { try SpoolClient.checkTopicName(topic) }
        guard configuration.maxBufferedRecords > 0 else { throw SpoolError(.invalidArgument, "maxBufferedRecords must be at least 1") }
        self.client = client
        self.group = group
        self.topics = topics
        self.configuration = configuration
        self.logger = logger
        (events, eventSink) = AsyncStream.makeStream(of: ConsumerEvent.self, bufferingPolicy: .bufferingNewest(100))
        coordinator.withLock { $0 = Task { [self] in await runMembership() } }
    }

    deinit {
        coordinator.withLock { $0?.cancel() }
        for task in state.withLock({ $0.stopAll() }) { task.cancel() }
        eventSink.finish()
    }

    /// The partitions the consumer reads now, sorted.
    public var assignment: [TopicPartition] { state.withLock { $0.partitions.keys.sorted() } }

    /// Records fetched and waiting for the loop; never more than ``ConsumerConfiguration/maxBufferedRecords``.
    public var bufferedRecordCount: Int { state.withLock { $0.bufferedCount } }

    /// The member id the broker gave this consumer; empty before the first join.
    public var memberID: String { state.withLock { $0.memberID } }

    public func makeAsyncIterator() -> Iterator { Iterator(consumer: self) }

    /// Iterates the consumer's records; see ``Consumer``.
    public struct Iterator: AsyncIteratorProtocol {
        let consumer: Consumer
        /// The next record, waiting as long as it takes; nil after ``Consumer/close(countingLastRecord:)``. Marks the
        /// record returned before as processed.
        public mutating func next() async throws -> SpoolRecord? { try await consumer.nextRecord() }
    }

    // MARK: Commits

    /// Commits `record` as processed (its partition resumes after it) and returns once the
    /// broker stored the offset. Throws ``SpoolError/Code/staleGeneration`` if the partition was
    /// revoked meanwhile.
    public func commit(_ record: SpoolRecord) async throws(SpoolError) {
        let partition = TopicPartition(topic: record.topic, partition: record.partition)
        let (memberID, generation) = state.withLock { state in
            state.markProcessed(record)
            return (state.memberID, state.generation)
        }
        try await client.commitOffsets(group, [CommittedOffset(partition: partition, offset: record.offset + 1)], memberID: memberID,
                                       generation: generation)
        state.withLock { $0.partitions[partition]?.noteCommitted(record.offset + 1) }
    }

    /// Commits every processed record (the last one returned included) and returns once stored.
    public func commit() async throws(SpoolError) {
        state.withLock { $0.markLastDeliveredProcessed() }
        try await commitProcessed(nil)
    }

    /// Stops consuming: stops fetching, commits what was processed (automatic commits; the last
    /// record returned counts as processed unless `countingLastRecord` is false, for a caller
    /// that stops in the middle of it), leaves the group so its partitions move at once,
    /// and ends iteration (``Iterator/next()`` returns nil). Never throws: a commit or leave that
    /// fails is logged. Idempotent. Call it when done: membership runs in the background until
    /// then (or until the client is closed, after which the broker removes the member when its
    /// session times out).
    public func close(countingLastRecord: Bool = true) async {
        let task = coordinator.withLock { task in
            defer { task = nil }
            return task
        }
        guard let task else { return }
        task.cancel()
        await task.value
        let (fetchers, memberID) = state.withLock { state in
            if countingLastRecord { state.markLastDeliveredProcessed() }
            return (state.stopFetching(), state.memberID)
        }
        for fetcher in fetchers { fetcher.cancel() }
        if configuration.autoCommit {
            await commitWithRetries()
        }
        if !memberID.isEmpty {
            do {
                try await client.leaveGroup(group, memberID: memberID)
            } catch {
                logger.warning("could not leave the group; the broker removes the member after its session timeout",
                               metadata: ["group": "\(group)", "error": "\(error)"])
            }
        }
        for task in state.withLock({ $0.stopAll() }) { task.cancel() }
        eventSink.finish()
    }

    /// The final commit of ``close(countingLastRecord:)``: retried while the failure is retriable or the generation
    /// moved (then a heartbeat refreshes it), for at most the client's request timeout.
    private func commitWithRetries() async {
        let deadline = ContinuousClock.now + client.configuration.requestTimeout
        while true {
            do {
                try await commitProcessed(nil)
                return
            } catch {
                guard (error.isRetriable || error.code == .staleGeneration), ContinuousClock.now < deadline else {
                    logger.error("final commit failed; records after the last commit will be delivered again",
                                 metadata: ["group": "\(group)", "error": "\(error)"])
                    return
                }
                if error.code == .staleGeneration { try? await heartbeatOnce() }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Commits the processed offsets that moved, of `partitions` (nil: all).
    private func commitProcessed(_ partitions: Set<TopicPartition>?) async throws(SpoolError) {
        let (offsets, memberID, generation) = state.withLock { state in
            (state.uncommitted(in: partitions), state.memberID, state.generation)
        }
        guard !offsets.isEmpty, !memberID.isEmpty else { return }
        try await client.commitOffsets(group, offsets, memberID: memberID, generation: generation)
        state.withLock { state in
            for offset in offsets { state.partitions[offset.partition]?.noteCommitted(offset.offset) }
        }
    }

    // MARK: Delivery

    private func nextRecord() async throws -> SpoolRecord? {
        while true {
            let outcome = state.withLock { $0.takeRecord(maxBuffered: configuration.maxBufferedRecords) }
            switch outcome {
            case .record(let record, let freed):
                for waiter in freed { waiter.resume() }
                return record
            case .finished:
                return nil
            case .failed(let error):
                throw error
            case .empty:
                try Task.checkCancellation()
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let ready = state.withLock { state in
                            guard !state.hasRecordOrEnd else { return true }
                            state.waitingReader = continuation
                            return false
                        }
                        if ready { continuation.resume() }
                    }
                } onCancel: {
                    state.withLock { $0.takeReader() }?.resume()
                }
            }
        }
    }

    // MARK: Membership

    /// Joins, then heartbeats and auto-commits until cancelled; rejoins when the broker forgot
    /// the member; gives up partitions whose session must have expired.
    private func runMembership() async {
        var mustJoin = true
        var backoff = Backoff()
        var lastContact = ContinuousClock.now
        var nextHeartbeat = ContinuousClock.now
        var nextCommit = ContinuousClock.now + configuration.autoCommitInterval
        while !Task.isCancelled {
            do throws(SpoolError) {
                if mustJoin {
                    let (memberID, owned) = state.withLock { ($0.memberID, $0.partitions.keys.sorted()) }
                    let assignment = try await client.joinGroup(group, topics: topics, memberID: memberID, owned: owned,
                                                                sessionTimeout: configuration.sessionTimeout)
                    mustJoin = false
                    logger.debug("joined", metadata: ["group": "\(group)", "member": "\(assignment.memberID)", "generation": "\(assignment.generation)"])
                    try await apply(assignment)
                } else {
                    try await heartbeatOnce()
                }
                lastContact = .now
                backoff.reset()
                nextHeartbeat = .now + .milliseconds(Swift.max(configuration.sessionTimeout.wholeMilliseconds / 3, 10))
                if configuration.autoCommit, ContinuousClock.now >= nextCommit {
                    nextCommit = .now + configuration.autoCommitInterval
                    try await commitProcessed(nil)
                }
            } catch {
                if error.code == .cancelled || error.code == .clientClosed { return }
                if error.code == .unknownMember {
                    mustJoin = true
                    continue
                }
                if error.code == .staleGeneration {
                    nextHeartbeat = .now  // a commit raced a rebalance: refresh at once
                    continue
                }
                guard error.isRetriable else {
                    fail(error)
                    return
                }
                if ContinuousClock.now - lastContact > configuration.sessionTimeout { loseAll() }
                logger.debug("group request failed; retrying", metadata: ["group": "\(group)", "error": "\(error)"])
                try? await Task.sleep(for: backoff.next())
                continue
            }
            // Sleep until the next heartbeat or auto-commit, unless a revocation (made by this loop,
            // in `apply`) asks for the release to be sent at once: no polling in between.
            let releaseNow = state.withLock { state in
                defer { state.heartbeatNow = false }
                return state.heartbeatNow
            }
            if !releaseNow {
                try? await Task.sleep(until: Swift.min(nextHeartbeat, configuration.autoCommit ? nextCommit : nextHeartbeat), clock: .continuous)
            }
        }
    }

    /// One heartbeat carrying the partitions still held; applies the answer.
    private func heartbeatOnce() async throws(SpoolError) {
        let (memberID, generation, owned) = state.withLock { ($0.memberID, $0.generation, $0.partitions.keys.sorted()) }
        let assignment = try await client.heartbeat(group, memberID: memberID, generation: generation, owned: owned)
        try await apply(assignment)
    }

    /// Makes the consumer's partitions those of `assignment`: revokes the ones gone (stop, wait
    /// for the handler to finish its record, commit, release) and starts the new ones at their
    /// committed offset or the reset position.
    private func apply(_ assignment: GroupAssignment) async throws(SpoolError) {
        let wanted = Set(assignment.partitions)
        let current = state.withLock { state in
            state.memberID = assignment.memberID
            state.generation = assignment.generation
            return Set(state.partitions.keys)
        }
        let revoked = current.subtracting(wanted)
        if !revoked.isEmpty { await revoke(revoked) }
        let added = wanted.subtracting(current)
        guard !added.isEmpty else { return }
        let committed = try await client.committedOffsets(group, partitions: added.sorted())
        var started: [TopicPartition] = []
        for entry in committed where added.contains(entry.partition) {
            let start = entry.offset >= 0 ? entry.offset : try await resetPosition(entry.partition)
            state.withLock { state in
                let epoch = state.nextEpoch()
                let task = Task { [self] in await fetchLoop(entry.partition, from: start, epoch: epoch) }
                state.partitions[entry.partition] = PartitionProgress(epoch: epoch, fetcher: task,
                                                                      committed: entry.offset >= 0 ? entry.offset : nil)
            }
            started.append(entry.partition)
        }
        logger.info("partitions assigned", metadata: ["group": "\(group)", "partitions": "\(started.sorted())"])
        eventSink.yield(.assigned(started.sorted()))
    }

    private func revoke(_ partitions: Set<TopicPartition>) async {
        let (fetchers, freed) = state.withLock { $0.stopFetching(partitions) }
        for fetcher in fetchers { fetcher.cancel() }
        for waiter in freed { waiter.resume() }
        // Let the handler finish a record of these partitions (it counts as processed when it asks for the next).
        let deadline = ContinuousClock.now + configuration.sessionTimeout / 2
        while ContinuousClock.now < deadline, state.withLock({ $0.isHandling(partitions) }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
        if configuration.autoCommit {
            do {
                try await commitProcessed(partitions)
            } catch {
                logger.warning("commit before a revocation failed; the new owner reprocesses records since the last commit",
                               metadata: ["group": "\(group)", "error": "\(error)"])
            }
        }
        state.withLock { state in
            for partition in partitions { state.partitions.removeValue(forKey: partition) }
            state.heartbeatNow = true
        }
        logger.info("partitions revoked", metadata: ["group": "\(group)", "partitions": "\(partitions.sorted())"])
        eventSink.yield(.revoked(partitions.sorted()))
    }

    /// Drops every partition without committing: the session must have expired on the broker.
    private func loseAll() {
        let (lost, fetchers, freed) = state.withLock { state in
            let lost = state.partitions.keys.sorted()
            let (fetchers, freed) = state.stopFetching(Set(lost))
            state.partitions = [:]
            return (lost, fetchers, freed)
        }
        guard !lost.isEmpty else { return }
        for fetcher in fetchers { fetcher.cancel() }
        for waiter in freed { waiter.resume() }
        logger.warning("partitions lost: no heartbeat got through within the session timeout", metadata: ["group": "\(group)"])
        eventSink.yield(.lost(lost))
    }

    private func resetPosition(_ partition: TopicPartition) async throws(SpoolError) -> Int64 {
        switch configuration.autoOffsetReset {
        case .earliest: return try await client.offset(of: partition.topic, partition: partition.partition, .earliest)
        case .latest: return try await client.offset(of: partition.topic, partition: partition.partition, .latest)
        case .error: throw SpoolError(.offsetOutOfRange, "group '\(group)' has no committed offset for \(partition) and autoOffsetReset is .error")
        }
    }

    private func fail(_ error: SpoolError) {
        logger.error("consumer failed", metadata: ["group": "\(group)", "error": "\(error)"])
        state.withLock { state in
            state.failure = error
            return state.takeReader()
        }?.resume()
    }

    // MARK: Fetching

    /// Long-polls one partition from `offset` into the buffer until cancelled.
    private func fetchLoop(_ partition: TopicPartition, from offset: Int64, epoch: Int) async {
        var position = offset
        var backoff = Backoff()
        while !Task.isCancelled {
            await waitForSpace()
            guard !Task.isCancelled else { return }
            do throws(SpoolError) {
                let (records, _) = try await client.fetch(from: partition.topic, partition: partition.partition, offset: position,
                                                          maxWait: client.configuration.fetchMaxWait)
                backoff.reset()
                guard !records.isEmpty else { continue }
                let (taken, reader) = state.withLock {
                    $0.push(records, to: partition, epoch: epoch, maxBuffered: configuration.maxBufferedRecords)
                }
                reader?.resume()
                if taken > 0 { position = records[taken - 1].offset + 1 }  // the rest is fetched again later
            } catch {
                if error.code == .cancelled || error.code == .clientClosed { return }
                if error.code == .offsetOutOfRange, configuration.autoOffsetReset != .error,
                   let reset = error.details[configuration.autoOffsetReset == .earliest ? "earliest" : "latest"] {
                    logger.warning("offset out of range; resetting", metadata: ["partition": "\(partition)", "from": "\(position)", "to": "\(reset)"])
                    position = reset
                    continue
                }
                guard error.isRetriable else {
                    fail(error)
                    return
                }
                try? await Task.sleep(for: backoff.next())
            }
        }
    }

    private func waitForSpace() async {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state in
                guard state.bufferedCount >= configuration.maxBufferedRecords, !state.isStopped else { return true }
                state.spaceWaiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
    }
}
