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
/// - A record counts as processed when the loop asks for the next one (records of
///   ``Iterator/nextBatch(upTo:)``: when it asks for more; and at ``commit()`` or
///   ``close(countingLastRecord:)``, the last ones returned count too). With automatic commits (the default), the
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
    private let state: Mutex<ConsumerState>
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
        state = Mutex(ConsumerState(nextRequestID: { [connection = client.connection] in connection.makeRequestID() }))
        (events, eventSink) = AsyncStream.makeStream(of: ConsumerEvent.self, bufferingPolicy: .bufferingNewest(100))
        coordinator.withLock { $0 = Task { [self] in await runMembership() } }
    }

    deinit {
        coordinator.withLock { $0?.cancel() }
        stopAll()
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
        /// records returned before as processed.
        public mutating func next() async throws -> SpoolRecord? { try await consumer.nextRecords(upTo: 1)?.first }

        /// The records fetched already, in the order ``next()`` would return them (at least one,
        /// waiting for it as long as it takes; at most `limit`); nil after
        /// ``Consumer/close(countingLastRecord:)``. Marks the records returned before as processed;
        /// these count as processed together, when the loop asks for more (or at a commit or close),
        /// so a handler can apply them in one local transaction.
        public mutating func nextBatch(upTo limit: Int) async throws -> ArraySlice<SpoolRecord>? { try await consumer.nextRecords(upTo: limit) }
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
        transition { state, actions in
            state.markLastDeliveredProcessed(actions: &actions)
        }
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
        let memberID = transition { state, actions in
            if countingLastRecord { state.markLastDeliveredProcessed(actions: &actions) }
            state.stopFetching(Set(state.partitions.keys), actions: &actions)
            return state.memberID
        }
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
        stopAll()
    }

    /// Ends iteration and fetching, and the events stream.
    private func stopAll() {
        transition { state, actions in
            state.stopAll(actions: &actions)
        }
        eventSink.finish()
    }

    /// The final commit of ``close(countingLastRecord:)``: retried while the failure is retriable or the generation
    /// moved (then a heartbeat refreshes it), for at most the client's request timeout.
    private func commitWithRetries() async {
        let deadline = ContinuousClock.now + client.configuration.requestTimeout
        var backoff = Backoff()
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
                if error.code == .staleGeneration, let assignment = try? await heartbeat() { _ = try? await apply(assignment) }
                try? await Task.sleep(for: backoff.next())
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

    private func nextRecords(upTo limit: Int) async throws -> ArraySlice<SpoolRecord>? {
        while true {
            let outcome = transition { state, actions in
                state.takeRecords(upTo: limit, maxBuffered: configuration.maxBufferedRecords, actions: &actions)
            }
            switch outcome {
            case .records(let records):
                return records
            case .finished:
                return nil
            case .failed(let error):
                throw error
            case .empty:
                try Task.checkCancellation()
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        if !state.withLock({ $0.park(continuation) }) { continuation.resume() }
                    }
                } onCancel: {
                    state.withLock { $0.unparkReader() }?.resume()
                }
            }
        }
    }

    // MARK: Membership

    /// Joins, then heartbeats and auto-commits until cancelled, as ``MembershipSchedule`` says:
    /// rejoins when the broker forgot the member, gives up partitions whose session must have
    /// expired, and sleeps in between (no polling).
    private func runMembership() async {
        var schedule = MembershipSchedule(sessionTimeout: configuration.sessionTimeout,
                                          autoCommitInterval: configuration.autoCommit ? configuration.autoCommitInterval : nil, now: .now)
        while !Task.isCancelled {
            do throws(SpoolError) {
                switch schedule.next(now: .now) {
                case .join:
                    let (memberID, owned) = state.withLock { ($0.memberID, $0.partitions.keys.sorted()) }
                    let assignment = try await client.joinGroup(group, topics: topics, memberID: memberID, owned: owned,
                                                                sessionTimeout: configuration.sessionTimeout)
                    schedule.contacted(now: .now)
                    logger.debug("joined", metadata: ["group": "\(group)", "member": "\(assignment.memberID)", "generation": "\(assignment.generation)"])
                    if try await apply(assignment) { schedule.released() }
                case .heartbeat:
                    let assignment = try await heartbeat()
                    schedule.contacted(now: .now)
                    if try await apply(assignment) { schedule.released() }
                case .commit:
                    try await commitProcessed(nil)
                case .wait(let until):
                    try? await Task.sleep(until: until, clock: .continuous)
                }
            } catch {
                switch schedule.failed(error, now: .now) {
                case .stop:
                    return
                case .continueNow:
                    continue
                case .fail:
                    fail(error)
                    return
                case .retry(let wait, let sessionExpired):
                    if sessionExpired { loseAll() }
                    logger.debug("group request failed; retrying", metadata: ["group": "\(group)", "error": "\(error)"])
                    try? await Task.sleep(for: wait)
                }
            }
        }
    }

    /// One heartbeat carrying the partitions still held; returns the broker's answer.
    private func heartbeat() async throws(SpoolError) -> GroupAssignment {
        let (memberID, generation, owned) = state.withLock { ($0.memberID, $0.generation, $0.partitions.keys.sorted()) }
        return try await client.heartbeat(group, memberID: memberID, generation: generation, owned: owned)
    }

    /// Makes the consumer's partitions those of `assignment`: revokes the ones gone (stop, wait
    /// for the handler to finish its record, commit, release) and starts the new ones at their
    /// committed offset or the reset position. Returns true if it revoked partitions (their
    /// release goes with the next heartbeat, which should go at once).
    private func apply(_ assignment: GroupAssignment) async throws(SpoolError) -> Bool {
        let wanted = Set(assignment.partitions)
        let current = state.withLock { state in
            state.memberID = assignment.memberID
            state.generation = assignment.generation
            return Set(state.partitions.keys)
        }
        let revoked = current.subtracting(wanted)
        if !revoked.isEmpty { await revoke(revoked) }
        let added = wanted.subtracting(current)
        guard !added.isEmpty else { return !revoked.isEmpty }
        let committed = try await client.committedOffsets(group, partitions: added.sorted())
        var started: [TopicPartition] = []
        for entry in committed where added.contains(entry.partition) {
            let start = entry.offset >= 0 ? entry.offset : try await resetPosition(entry.partition)
            transition { state, actions in
                state.start(entry.partition, at: start, committed: entry.offset >= 0 ? entry.offset : nil,
                            maxBuffered: configuration.maxBufferedRecords, actions: &actions)
            }
            started.append(entry.partition)
        }
        logger.info("partitions assigned", metadata: ["group": "\(group)", "partitions": "\(started.sorted())"])
        eventSink.yield(.assigned(started.sorted()))
        return !revoked.isEmpty
    }

    private func revoke(_ partitions: Set<TopicPartition>) async {
        transition { state, actions in
            state.stopFetching(partitions, actions: &actions)
        }
        // Let the handler finish a record of these partitions (it counts as processed when it
        // asks for the next, which wakes this wait), for at most half the session timeout, and
        // not while the consumer closes.
        let timeout = Task { [self] in
            try? await Task.sleep(for: configuration.sessionTimeout / 2)
            guard !Task.isCancelled else { return }
            state.withLock { $0.takeHandlerWaiter() }?.resume()
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled || !state.withLock({ $0.waitForHandler(partitions, continuation) }) { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.takeHandlerWaiter() }?.resume()  // closing: stop waiting
        }
        timeout.cancel()
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
        }
        logger.info("partitions revoked", metadata: ["group": "\(group)", "partitions": "\(partitions.sorted())"])
        eventSink.yield(.revoked(partitions.sorted()))
    }

    /// Drops every partition without committing: the session must have expired on the broker.
    private func loseAll() {
        let lost = transition { state, actions in
            let lost = state.partitions.keys.sorted()
            state.stopFetching(Set(lost), actions: &actions)
            state.partitions = [:]
            return lost
        }
        guard !lost.isEmpty else { return }
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
        transition { state, actions in
            state.fail(error, actions: &actions)
        }
    }

    // MARK: Fetching

    /// Runs one transition of the state under its lock, then does what it returned.
    @discardableResult
    private func transition<Result: Sendable>(_ body: (inout ConsumerState, inout ConsumerActions) -> Result) -> Result {
        let (result, actions) = state.withLock { state in
            var actions = ConsumerActions()
            return (body(&state, &actions), actions)
        }
        perform(actions)
        return result
    }

    /// Does what a transition of the state returned: sends and cancels fetches, wakes waiters,
    /// schedules retries, logs. Fetch replies are handled on the connection's I/O thread, in the
    /// wake-up that received them: the records go to the buffer and the reader is resumed from
    /// there, with no task in between.
    private func perform(_ actions: ConsumerActions) {
        for id in actions.cancellations { client.connection.cancel(id) }
        for waiter in actions.wakeups { waiter.resume() }
        for reset in actions.resets {
            logger.warning("offset out of range; resetting", metadata: ["partition": "\(reset.partition)", "from": "\(reset.from)", "to": "\(reset.to)"])
        }
        if let failure = actions.failure { logger.error("consumer failed", metadata: ["group": "\(group)", "error": "\(failure)"]) }
        for retry in actions.retries {
            Task { [self] in
                try? await Task.sleep(for: retry.after)
                transition { state, actions in
                    state.retryDue(retry.partition, epoch: retry.epoch, actions: &actions)
                }
            }
        }
        for order in actions.fetches { send(order) }
    }

    private func send(_ order: FetchOrder) {
        let partition = order.partition
        let maxWait = client.configuration.fetchMaxWait
        let body = client.fetchRequest(partition.topic, partition: partition.partition, offset: order.offset, maxWait: maxWait)
        let closed = client.send(id: order.requestID, .fetch, body, extraTimeout: maxWait) { [self] reply in
            let result = reply.flatMap { reply in
                Result { () throws(SpoolError) in
                    try client.fetchResult(reply, topic: partition.topic, partition: partition.partition, offset: order.offset)
                }
            }
            transition { state, actions in
                switch result {
                case .success(let fetched):
                    state.fetched(order, fetched, maxBuffered: configuration.maxBufferedRecords, actions: &actions)
                case .failure(let error):
                    state.fetchFailed(order, error: error, reset: configuration.autoOffsetReset, actions: &actions)
                }
            }
        }
        if let closed {
            transition { state, actions in
                state.fetchFailed(order, error: closed, reset: configuration.autoOffsetReset, actions: &actions)
            }
        }
    }
}
