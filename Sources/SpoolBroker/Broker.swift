import Foundation
import Logging
@_spi(Testing) import SpoolStorage
import SpoolWire

/// The broker's decisions: topics, appends, acknowledgements by durability, parked fetches.
///
/// It takes events (a request, a finished sync, the passing of time) and returns the replies
/// to send; it never touches a socket, so it is tested without one. Invariants: an
/// acknowledgement never promises more than happened (under `fsync: always` a produce is
/// answered only after a sync covering it); consumers see only records below the visible end
/// (the synced end under `fsync: always`), so nothing they read can vanish in a crash.
///
/// Not thread-safe: one thread (the server's network loop) owns a broker.
public final class Broker {
    /// Version string reported in metadata replies.
    public static let version = "0.1.0"

    /// The configuration it was opened with.
    public let configuration: BrokerConfiguration
    let logger: Logger
    let dataDirectory: DataDirectory
    var topics: [TopicName: [PartitionState]] = [:]
    /// Each open topic's own settings (from its `topic.json`), for describing it.
    private var topicSettings: [TopicName: [String: String]] = [:]
    /// Topics deleted so far; a topic's partitions start at epoch `deletedTopics << 32`, so a sync
    /// of a deleted topic that finishes after a topic of the same name was created is ignored.
    private var deletedTopics = 0
    private var parkedFetches: [PartitionKey: [ParkedFetch]] = [:] {
        didSet { if parkedFetches.isEmpty { earliestParkedDeadline = nil } }
    }
    /// At or before the earliest deadline of the parked fetches (fetches answered early leave it
    /// behind, until the next expiry scan sets it again); nil when none is parked. The loop looks
    /// at the parked fetches only once it has passed, not at every wake-up.
    private var earliestParkedDeadline: Int64?
    /// Parked fetches per client, bounded by ``BrokerConfiguration/maxParkedFetchesPerClient``.
    private var parkedCounts: [ClientID: Int] = [:]
    /// Produces and commits per client waiting for a sync, bounded by ``BrokerConfiguration/maxWaitingRequestsPerClient``.
    private var waitingCounts: [ClientID: Int] = [:]
    private var dirty: Set<PartitionKey> = []
    /// Partitions (and the offset store) whose last append, sync or commit failed on the disk.
    var writeFaults = WriteFaults()
    private var isShutDown = false
    private var isClosed = false
    /// Monotonic time of the next retention pass; nil before the first.
    private var nextRetentionCheck: Int64?
    /// Monotonic time the log cleaner next looks for work; nil before the first look.
    private var nextCleaningCheck: Int64?
    /// The cleaning pass running now (one at a time): its partition and log, the offset it
    /// cleans up to, and when it started (ms since the epoch).
    private var runningCleaning: (key: PartitionKey, log: ObjectIdentifier, end: Int64, startedAt: Int64)?
    /// Consumer groups' membership and assignment.
    private(set) lazy var groups = GroupCoordinator(
        recovering: Set(offsetStore.groups), rejoinGrace: Int64(configuration.groupRejoinGraceMilliseconds)
    ) { [unowned self] topic in
        (try? TopicName(topic)).flatMap { self.topics[$0] }.map { Int32($0.count) }
    }
    /// The groups' committed offsets.
    let offsetStore: OffsetStore
    /// Commits waiting for the offset store's sync, in commit order.
    var pendingCommits: [PendingCommit] = []
    /// Offset-store files written since the last sync was taken.
    var unsyncedCommits: SyncWork?
    /// Why commits are refused: a sync of the offset store failed and rewriting it failed too (each commit tries again).
    var offsetStoreFailure: String?
    /// Bumped each time a failed sync made the broker rewrite the offset store; syncs of earlier epochs are ignored.
    var offsetStoreEpoch = 0
    /// The broker's metrics (swift-metrics).
    let metrics = BrokerMetrics()

    /// Opens (and recovers) every topic under the data directory and takes its lock, after
    /// creating the declared topics that are missing and storing the declared settings of those
    /// that exist (a declared partition count that differs from the disk's is logged and ignored:
    /// partitions never change). Throws if another broker holds the directory or a log cannot be
    /// opened.
    public convenience init(configuration: BrokerConfiguration, logger: Logger) throws(StorageError) {
        try self.init(configuration: configuration, logger: logger, io: .system)
    }

    /// Opens the broker with every write, truncation and sync of its files going through `io`
    /// (for fault injection).
    @_spi(Testing) public init(configuration: BrokerConfiguration, logger: Logger, io: FileIO) throws(StorageError) {
        self.configuration = configuration
        self.logger = logger
        dataDirectory = try DataDirectory(path: configuration.dataDirectory,
                                          maxOpenFiles: configuration.maxOpenFiles ?? OpenFileCache.defaultCapacity, logger: logger, io: io)
        offsetStore = try dataDirectory.openOffsetStore(logger: logger)
        var existing = try dataDirectory.existingTopics()
        for (name, declared) in configuration.declaredTopics.sorted(by: { $0.key < $1.key }) {
            guard let found = existing[name] else {
                try dataDirectory.createTopic(name, declared)
                existing[name] = declared
                logger.info("created a declared topic", metadata: ["topic": "\(name)", "partitions": "\(declared.partitions)"])
                continue
            }
            if found.partitions != declared.partitions {
                logger.warning("a declared topic has another partition count on disk; partitions never change, keeping the disk's", metadata: [
                    "topic": "\(name)", "declared": "\(declared.partitions)", "onDisk": "\(found.partitions)",
                ])
            }
            if found.settings != declared.settings {
                try dataDirectory.setSettings(declared.settings, of: name)
                existing[name]?.settings = declared.settings
                logger.info("stored the declared settings of a topic", metadata: ["topic": "\(name)", "settings": "\(declared.settings)"])
            }
        }
        try openTopics(existing)
        let partitionCount = topics.values.reduce(0) { $0 + $1.count }
        logger.info("opened data directory", metadata: [
            "path": "\(configuration.dataDirectory)", "topics": "\(topics.count)", "partitions": "\(partitionCount)",
            "verified": "\(dataDirectory.openedAfterCleanShutdown ? "cheap checks (clean shutdown)" : "every segment in full")",
        ])
    }

    // MARK: Events

    /// Handles one request (`frames` without the routing identity) received at `now`
    /// (monotonic milliseconds) from `client`, whose authenticated name is `identity` (its CURVE
    /// key's name; nil without CURVE). Returns the replies that are due now; a produce waiting
    /// for its sync or a parked fetch is answered by a later event. With
    /// ``BrokerConfiguration/accessRules`` in force, a request the rules do not grant gets
    /// ``ErrorCode/notAuthorized`` naming the topic and the operation, and is logged.
    public func handle<Frame: RequestFrame>(client: ClientID, identity: String? = nil, frames: [Frame], now: Int64) -> [BrokerAction] {
        guard let first = frames.first else { return [] }
        let header: FrameHeader
        do {
            header = try decode(first) { try FrameHeader.decode($0) }
        } catch {
            // Without a valid header there is no correlation id to answer; say it once per message at debug.
            logger.debug("dropped a message with an unreadable header", metadata: ["error": "\(error)"])
            return []
        }
        let started = BrokerMetrics.nanosecondsNow
        defer { metrics.requestHandled(header.opCode, nanoseconds: BrokerMetrics.nanosecondsNow - started) }
        do throws(WireError) {
            guard !header.isReply, header.errorCode == .none else {
                throw WireError(.malformedRequest, "a request's header must not carry " + (header.isReply ? "the reply flag" : "an error code (\(header.errorCode))"))
            }
            guard header.version == FrameHeader.currentVersion else {
                throw WireError(.unsupportedVersion, "protocol version \(header.version) is not supported; this broker speaks \(FrameHeader.currentVersion)")
            }
            let body = try bodyFrames(frames, header: header)
            func authorize(_ operation: AccessOperation, _ topics: [String]) throws(WireError) {
                try self.authorize(identity, operation, topics, opCode: header.opCode)
            }
            switch header.opCode {
            case .produce:
                let request = try decode(body[0]) { try ProduceRequest.decode($0) }
                try authorize(.produce, [request.topic])
                return try produce(client: client, header: header, request: request, batch: body[1], now: now)
            case .fetch:
                let request = try decode(body[0]) { try FetchRequest.decode($0) }
                try authorize(.consume, [request.topic])
                return try fetch(client: client, header: header, request: request, now: now)
            case .fetchKey:
                let request = try decode(body[0]) { try FetchKeyRequest.decode($0) }
                try authorize(.consume, [request.topic])
                return [try fetchKey(client: client, header: header, request: request)]
            case .listOffsets:
                let request = try decode(body[0]) { try ListOffsetsRequest.decode($0) }
                try authorize(.consume, [request.topic])
                return [reply(client, header, try listOffsets(request))]
            case .metadata:
                let request = try decode(body[0]) { try MetadataRequest.decode($0) }
                return [reply(client, header, metadata(request, identity: identity))]
            case .createTopic:
                let request = try decode(body[0]) { try CreateTopicRequest.decode($0) }
                try authorize(.admin, [request.name])
                return [reply(client, header, try createTopic(request))]
            case .describeTopic:
                let request = try decode(body[0]) { try DescribeTopicRequest.decode($0) }
                try authorize(.consume, [request.name])
                return [reply(client, header, try describeTopic(request))]
            case .deleteTopic:
                let request = try decode(body[0]) { try DeleteTopicRequest.decode($0) }
                try authorize(.admin, [request.name])
                return try deleteTopic(client: client, header: header, request)
            case .initProducerID:
                _ = try decode(body[0]) { try InitProducerIDRequest.decode($0) }
                return [reply(client, header, initProducerID())]
            case .joinGroup:
                let request = try decode(body[0]) { try JoinGroupRequest.decode($0) }
                try authorize(.consume, request.topics)
                return [reply(client, header, try joinGroup(request, now: now))]
            case .heartbeat:
                return [reply(client, header, try heartbeat(decode(body[0]) { try HeartbeatRequest.decode($0) }, now: now))]
            case .leaveGroup:
                return [reply(client, header, leaveGroup(try decode(body[0]) { try LeaveGroupRequest.decode($0) }))]
            case .commitOffsets:
                let request = try decode(body[0]) { try CommitOffsetsRequest.decode($0) }
                try authorize(.consume, request.offsets.map(\.partition.topic))
                try commitOffsets(client: client, header: header, request, now: now)
                return []
            case .fetchOffsets:
                let request = try decode(body[0]) { try FetchOffsetsRequest.decode($0) }
                try authorize(.consume, request.partitions.map(\.topic))
                return [reply(client, header, try fetchOffsets(request))]
            case .listGroups:
                _ = try decode(body[0]) { try ListGroupsRequest.decode($0) }
                return [reply(client, header, listGroups())]
            case .describeGroup:
                return [reply(client, header, try describeGroup(decode(body[0]) { try DescribeGroupRequest.decode($0) }))]
            default:
                throw WireError(.unsupportedOperation, "operation \(header.opCode.rawValue) is not supported")
            }
        } catch {
            metrics.requestFailed(header.opCode, error.code)
            return [errorReply(client, header, error)]
        }
    }

    /// Throws ``ErrorCode/notAuthorized`` (and logs it) unless the access rules, if any, grant
    /// `operation` on every topic in `topics` to `identity`.
    private func authorize(_ identity: String?, _ operation: AccessOperation, _ topics: [String], opCode: OpCode) throws(WireError) {
        guard let rules = configuration.accessRules else { return }
        for topic in Set(topics).sorted() {
            let name = try TopicName(topic)
            guard !rules.allows(identity, operation, on: name) else { continue }
            metrics.aclRefused(operation)
            let who = identity.map { "client '\($0)'" } ?? "an unauthenticated client"
            logger.warning("refused a request: not authorized", metadata: [
                "client": "\(identity ?? "-")", "operation": "\(operation.rawValue)", "topic": "\(topic)", "request": "\(opCode)",
            ])
            throw WireError(.notAuthorized, "\(who) may not \(operation.rawValue) topic '\(topic)' (\(opCode) refused; see acl in spoold.yaml)")
        }
    }

    /// Records the outcome of a sync of `key`: on success everything below `result`'s offset is
    /// on disk; produces it covers are acknowledged and parked fetches may now be served.
    /// Results of an earlier epoch of the partition are ignored.
    ///
    /// On failure, the records appended since the last good sync may never reach the disk (Linux
    /// can drop the pages of a failed write-back, and a later sync would then report success
    /// without them: PostgreSQL's fsync lesson), so no later sync may vouch for them: the log is
    /// cut back to the last good sync and appends continue from there once the disk works again.
    /// Under `fsync: always` nobody acknowledged or read the cut records: their producers get a
    /// storage error and retry. Under `interval` and `never` they were acknowledged as the policy
    /// promises (page cache, sync pending): the cut is logged at error with the offsets lost. If
    /// even the cut fails, the partition refuses produces and tries the cut again at each one.
    public func syncCompleted(_ key: SyncKey, result: Result<Int64, StorageError>, now: Int64) -> [BrokerAction] {
        guard case .partition(let partition) = key.subject else { return committedOffsetsSynced(result, epoch: key.epoch, now: now) }
        guard let state = partitionState(partition), key.epoch == state.epoch else { return [] }
        switch result {
        case .success(let end):
            if let unconfirmed = state.unconfirmedSync, unconfirmed.endOffset <= end { state.unconfirmedSync = nil }
            writeFaults.succeeded(key.subject, .sync, now: now, metadata: state.logMetadata, logger: logger)
            guard end > state.durableEnd else { return [] }
            metrics.syncRecords.record(end - state.durableEnd)
            state.durableEnd = end
            var actions = delivered(state.acknowledge(upTo: end))
            if state.policy == .always { actions += wakeParkedFetches(partition, now: now) }
            return actions
        case .failure(let error):
            return syncFailed(state, error: error, now: now)
        }
    }

    private func syncFailed(_ state: PartitionState, error: StorageError, now: Int64) -> [BrokerAction] {
        state.epoch += 1
        dirty.insert(state.key)
        state.unconfirmedSync = nil
        let (goodEnd, appendedEnd) = (state.durableEnd, state.log.logEndOffset)
        let affects = state.policy == .always
            ? "the records appended since the last good sync are cut from the log, their producers get errors and retry"
            : "the records appended since the last good sync are cut from the log; they were acknowledged (fsync: \(state.policy)) and are lost"
        writeFaults.failed(.partition(state.key), .sync, error, affects: affects, now: now, metadata: state.logMetadata, logger: logger)
        if state.policy != .always, appendedEnd > goodEnd {
            logger.error("acknowledged records lost: a sync failed, so they were cut from the log", metadata: state.logMetadata.merging([
                "offsets": "\(goodEnd)..<\(appendedEnd)", "fsync": "\(state.policy)", "error": "\(error.message)",
            ]) { $1 })
        }
        let actions = delivered(state.failAcknowledgements(error: WireError(
            .storageError, "the sync of \(state.key) failed, the records were not stored (retry): \(error.message)")))
        cutBackToLastGoodSync(state)
        return actions
    }

    /// Cuts `state`'s log back to its last good sync; on failure takes the partition offline
    /// until a later call (made by the next produce) succeeds.
    private func cutBackToLastGoodSync(_ state: PartitionState) {
        do throws(StorageError) {
            try state.log.truncate(to: state.durableEnd)
            try state.reloadProducers()
            if state.offlineReason != nil {
                logger.notice("partition back online: the log was cut back to its last good sync", metadata: state.logMetadata)
            }
            state.offlineReason = nil
        } catch {
            if state.offlineReason == nil {
                logger.critical("partition offline: a sync failed and the log could not be cut back; retrying at each produce",
                                metadata: state.logMetadata.merging(["error": "\(error.message)"]) { $1 })
            }
            state.offlineReason = "after a failed sync the log could not be cut back to offset \(state.durableEnd) (\(error.message)); it is retried at each produce"
        }
    }

    /// Answers parked fetches whose wait ran out by `now`, with whatever data they can have.
    /// Costs nothing until the earliest deadline has passed.
    public func expireParkedFetches(now: Int64) -> [BrokerAction] {
        guard let earliest = earliestParkedDeadline, earliest <= now else { return [] }
        var actions: [BrokerAction] = []
        var remaining: [PartitionKey: [ParkedFetch]] = [:]
        earliestParkedDeadline = nil
        for (key, parked) in parkedFetches {
            var kept: [ParkedFetch] = []
            for fetch in parked {
                if fetch.deadline <= now {
                    actions.append(answer(fetch))
                    unpark(fetch)
                } else {
                    kept.append(fetch)
                    earliestParkedDeadline = min(earliestParkedDeadline ?? fetch.deadline, fetch.deadline)
                }
            }
            if !kept.isEmpty { remaining[key] = kept }
        }
        parkedFetches = remaining
        return actions
    }

    /// Sync work that is due at `now`: every partition appended to under `fsync: always`, and
    /// under `fsync: interval` those whose interval has passed. Submit each to the flusher and
    /// report back through ``syncCompleted(_:result:now:)``.
    public func takeSyncWork(now: Int64) -> [(SyncKey, SyncWork)] {
        var work: [(SyncKey, SyncWork)] = []
        if let commits = unsyncedCommits {
            unsyncedCommits = nil
            work.append((.committedOffsets(epoch: offsetStoreEpoch), commits))
        }
        guard !dirty.isEmpty else { return work }
        for key in dirty {
            guard let state = partitionState(key) else { continue }
            switch state.policy {
            case .always:
                break
            case .interval(let milliseconds):
                guard now - state.lastSyncAt >= Int64(milliseconds) else { continue }
            case .never:
                dirty.remove(key)  // nothing syncs before the shutdown, which syncs every partition anyway
                continue
            }
            dirty.remove(key)
            state.lastSyncAt = now
            if let item = takeSyncWork(state) { work.append((state.syncKey, item)) }
        }
        return work
    }

    /// The partition's new sync work, merged with what is still unconfirmed (after a failure).
    private func takeSyncWork(_ state: PartitionState) -> SyncWork? {
        let taken = state.log.takeSyncWork()
        let work = switch (state.unconfirmedSync, taken) {
        case (let old?, let new?): old.merged(with: new)
        case (let old, let new): old ?? new
        }
        state.unconfirmedSync = work
        return work
    }

    /// Deletes the segments that their topic's retention (`retention.ms`, `retention.bytes`) no
    /// longer keeps, in every partition, at most once per ``BrokerConfiguration/retentionCheckIntervalMilliseconds``
    /// (the first call checks at once). `now` is monotonic; `wallClockMilliseconds` (ms since
    /// the epoch, read only when a check is due) is compared with record timestamps. The files
    /// go on a background queue.
    public func enforceRetention(now: Int64, wallClockMilliseconds: @autoclosure () -> Int64) {
        guard now >= nextRetentionCheck ?? now, !isShutDown else { return }
        nextRetentionCheck = now + Int64(configuration.retentionCheckIntervalMilliseconds)
        let wallClock = wallClockMilliseconds()
        for partitions in topics.values {
            for state in partitions {
                do throws(StorageError) {
                    guard let result = try state.log.applyRetention(nowMilliseconds: wallClock, keepingFrom: state.visibleEnd)
                    else { continue }
                    dirty.insert(state.key)
                    logger.info("retention deleted old segments", metadata: ["partition": "\(state.key)", "result": "\(result)"])
                } catch {
                    logger.error("retention failed", metadata: ["partition": "\(state.key)", "error": "\(error)"])
                }
            }
        }
    }

    /// The next pass of the log cleaner, if one is due: at most one runs at a time, looked for at
    /// most once per ``BrokerConfiguration/retentionCheckIntervalMilliseconds``. A compacted
    /// partition is due when segments were sealed since its last pass, or when its
    /// `delete.retention.ms` passed since then (tombstones may have expired). Run the pass off
    /// the loop, then hand its result to ``finishCleaning(_:_:)``.
    public func takeCleaningPass(now: Int64, wallClockMilliseconds: @autoclosure () -> Int64) -> (PartitionKey, LogCleaning)? {
        guard runningCleaning == nil, now >= nextCleaningCheck ?? now, !isShutDown else { return nil }
        nextCleaningCheck = now + Int64(configuration.retentionCheckIntervalMilliseconds)
        let wallClock = wallClockMilliseconds()
        for partitions in topics.values {
            for state in partitions where state.log.configuration.cleanupPolicy.compacts {
                do throws(StorageError) {
                    guard let pass = try state.log.cleaningPass(keepingNewestSegments: ProducerStates.segmentsScannedAtOpen,
                                                                keepingFrom: state.visibleEnd, nowMilliseconds: wallClock)
                    else { continue }
                    if let last = state.lastCleaning, last.end >= pass.endOffset,
                       wallClock - last.at < state.log.configuration.deleteRetentionMilliseconds { continue }
                    runningCleaning = (state.key, ObjectIdentifier(state.log), pass.endOffset, wallClock)
                    return (state.key, pass)
                } catch {
                    logger.error("cannot plan a log cleaning pass", metadata: state.logMetadata.merging(["error": "\(error)"]) { $1 })
                }
            }
        }
        return nil
    }

    /// Installs the outcome of the cleaning pass of `key` (see ``takeCleaningPass(now:wallClockMilliseconds:)``)
    /// and logs what it removed; a pass whose partition was deleted meanwhile, or that failed,
    /// leaves the log as it was.
    public func finishCleaning(_ key: PartitionKey, _ result: Result<CleanedSegments, StorageError>) {
        guard let running = runningCleaning, running.key == key else { return }
        runningCleaning = nil
        guard let state = partitionState(key), ObjectIdentifier(state.log) == running.log else {
            if case .success(let cleaned) = result { cleaned.discard() }
            return
        }
        do throws(StorageError) {
            let cleaned = try result.get()
            let freed = try state.log.install(cleaned)
            state.lastCleaning = (running.end, running.startedAt)
            dirty.insert(key)
            logger.info("log cleaner compacted a partition",
                        metadata: state.logMetadata.merging(["report": "\(cleaned.report)", "freed": "\(freed)"]) { $1 })
        } catch where error.code == .closed {
            logger.debug("log cleaning pass stopped", metadata: state.logMetadata)
        } catch {
            logger.error("log cleaning pass failed; the log is unchanged", metadata: state.logMetadata.merging(["error": "\(error)"]) { $1 })
        }
    }

    /// The earliest moment something is due (a parked fetch expiring, an interval sync), in
    /// monotonic milliseconds, or nil if nothing waits on time.
    public var nextDeadline: Int64? {
        var deadline = [nextRetentionCheck, runningCleaning == nil ? nextCleaningCheck : nil, groups.nextDeadline].compactMap { $0 }.min()
        if let parked = earliestParkedDeadline { deadline = min(deadline ?? parked, parked) }
        for key in dirty {
            guard let state = partitionState(key), case .interval(let milliseconds) = state.policy else { continue }
            deadline = min(deadline ?? .max, state.lastSyncAt + Int64(milliseconds))
        }
        return deadline
    }

    /// When ``refreshMetrics(now:)`` next has work (monotonic ms): the loop's poll waits no longer.
    public var nextMetricsRefresh: Int64 { metrics.nextRefresh }

    /// Refreshes the gauges once per ``BrokerMetrics/refreshIntervalMilliseconds`` (call it at
    /// every turn of the loop; it returns at once until the time comes): each partition's size,
    /// segments, end and whether it refuses writes, every group's lag as `describeGroup` computes
    /// it, parked fetches, the offset store's state, the data directory's disk and the file cache.
    public func refreshMetrics(now: Int64) {
        guard now >= metrics.nextRefresh else { return }
        metrics.nextRefresh = now + BrokerMetrics.refreshIntervalMilliseconds
        for states in topics.values {
            for state in states {
                state.metrics.sizeBytes.record(state.log.sizeInBytes)
                state.metrics.segments.record(state.log.segmentCount)
                state.metrics.endOffset.record(state.visibleEnd)
                state.metrics.writesRefused.record(state.offlineReason != nil || writeFaults[.partition(state.key)] != nil ? 1 : 0)
            }
        }
        var lags: [(group: String, partition: TopicPartition, lag: Int64)] = []
        for group in listGroups().groups {
            guard let described = try? describeGroup(DescribeGroupRequest(group: group.name)) else { continue }
            lags += described.partitions.filter { $0.logEndOffset >= 0 }.map { (group.name, $0.partition, $0.lag) }
        }
        metrics.setLag(lags)
        metrics.parkedFetches.record(parkedFetches.values.reduce(0) { $0 + $1.count })
        metrics.offsetStoreWritesRefused.record(offsetStoreFailure != nil || writeFaults[.committedOffsets] != nil ? 1 : 0)
        metrics.measureDisk(configuration.dataDirectory)
        metrics.measureOpenFiles(dataDirectory.openFiles)
    }

    /// Starts a shutdown: answers every parked fetch and returns the sync work that makes
    /// every appended byte durable, whatever the policy. Run it, feed the results to
    /// ``syncCompleted(_:result:now:)`` (which sends the last acknowledgements), then ``close()``.
    public func beginShutdown() -> (actions: [BrokerAction], syncWork: [(SyncKey, SyncWork)]) {
        isShutDown = true
        let actions = parkedFetches.values.flatMap { $0 }.map(answer)
        parkedFetches = [:]
        parkedCounts = [:]
        dirty = []
        var work: [(SyncKey, SyncWork)] = unsyncedCommits.map { [(.committedOffsets(epoch: offsetStoreEpoch), $0)] } ?? []
        unsyncedCommits = nil
        for partitions in topics.values {
            for state in partitions {
                if let item = takeSyncWork(state) { work.append((state.syncKey, item)) }
            }
        }
        return (actions, work)
    }

    /// Closes every log and releases the data directory. Produces still waiting are answered
    /// with "broker shutting down". When every partition is synced to its end and closed cleanly,
    /// writes the clean-shutdown marker, so the next start skips the full verification.
    /// Idempotent: later calls do nothing.
    public func close() -> [BrokerAction] {
        guard !isClosed else { return [] }
        isClosed = true
        var actions: [BrokerAction] = []
        var isClean = true
        for partitions in topics.values {
            for state in partitions {
                actions += state.failAcknowledgements(error: WireError(.brokerShuttingDown, "the broker stopped before \(state.key) was synced"))
                // A failed sync's cut is not synced itself: only a full verification may trust the files then.
                guard isClean, state.durableEnd == state.log.logEndOffset, state.unconfirmedSync == nil, state.offlineReason == nil,
                      writeFaults[.partition(state.key)] == nil else {
                    isClean = false
                    state.log.close()
                    continue
                }
                do throws(StorageError) {
                    try state.log.closeCleanly()
                } catch {
                    isClean = false
                    logger.warning("could not close a partition cleanly; the next start verifies everything", metadata: ["error": "\(error)"])
                }
            }
        }
        actions += pendingCommits.map {
            errorReply($0.client, $0.header, WireError(.brokerShuttingDown, "the broker stopped before the commit was synced"))
        }
        pendingCommits = []
        offsetStore.close()
        if isClean {
            do throws(StorageError) {
                try dataDirectory.markCleanShutdown()
            } catch {
                logger.warning("could not write the clean-shutdown marker; the next start verifies everything", metadata: ["error": "\(error)"])
            }
        }
        topics = [:]
        dataDirectory.close()
        return actions
    }

    // MARK: Operations

    private func produce<Frame: RequestFrame>(client: ClientID, header: FrameHeader, request: ProduceRequest, batch: Frame, now: Int64) throws(WireError) -> [BrokerAction] {
        let name = try TopicName(request.topic)
        if topics[name] == nil {
            // A batch the broker refuses creates nothing.
            _ = try decode(batch) { bytes throws(WireError) in
                var keys = BatchKeys()
                return try checkProduced(bytes, keys: &keys)
            }
        }
        let state = try partition(name, request.partition, creating: true)
        if state.offlineReason != nil { cutBackToLastGoodSync(state) }
        if let reason = state.offlineReason { throw WireError(.storageError, "partition \(state.key) is offline: \(reason)") }
        if state.policy == .always { try checkWaiting(client) }
        var batchBytes = 0
        let outcome: ProduceOutcome = try decode(batch) { bytes throws(WireError) in
            batchBytes = bytes.count
            var keys = BatchKeys()
            let batchHeader = try checkProduced(bytes, keys: &keys)
            switch state.producers.verdict(for: batchHeader) {
            case .append:
                break
            case .duplicate(let stored):
                return .duplicate(stored)
            case .duplicateOutsideWindow:
                throw WireError(.duplicateSequence, "producer \(batchHeader.producerID) sent sequence \(batchHeader.baseSequence) to \(state.key) again; it was stored before the last \(ProducerStates.retainedBatches) batches")
            case .outOfOrder(let expected):
                throw WireError(.outOfOrderSequence, "producer \(batchHeader.producerID) sent sequence \(batchHeader.baseSequence) to \(state.key), expected \(expected): a batch before it is missing",
                                details: ["expected": Int64(expected)])
            case .unknownProducer:
                throw WireError(.outOfOrderSequence, "producer \(batchHeader.producerID) sent sequence \(batchHeader.baseSequence) to \(state.key), expected 0: the partition holds no batch of its epoch \(batchHeader.producerEpoch), so an earlier batch is missing or the producer was forgotten",
                                details: ["expected": 0])
            }
            if let condition = request.condition { try check(condition, on: state) }
            do throws(StorageError) {
                let appended = try state.log.append(bytes, keys: keys)
                state.producers.record(batchHeader, baseOffset: appended.baseOffset)
                return .appended(appended)
            } catch {
                writeFaults.failed(.partition(state.key), .append, error, affects: "produces to this partition are refused until it works again",
                                   now: now, metadata: state.logMetadata, logger: logger)
                throw WireError(.storageError, "append to \(state.key) failed, nothing was stored: \(error.message)")
            }
        }
        if case .appended = outcome {
            writeFaults.succeeded(.partition(state.key), .append, now: now, metadata: state.logMetadata, logger: logger)
        }
        let baseOffset: Int64
        let lastOffset: Int64
        switch outcome {
        case .appended(let appended):
            dirty.insert(state.key)
            (baseOffset, lastOffset) = (appended.baseOffset, appended.lastOffset)
            state.metrics.recordsIn.increment(by: lastOffset - baseOffset + 1)
            state.metrics.bytesIn.increment(by: batchBytes)
        case .duplicate(let stored):
            (baseOffset, lastOffset) = (stored.baseOffset, stored.lastOffset)
        }
        switch state.policy {
        case .always where lastOffset >= state.durableEnd:
            state.pendingAcks.append(PendingAck(client: client, header: header, partition: request.partition,
                                                baseOffset: baseOffset, lastOffset: lastOffset, arrivedAt: BrokerMetrics.nanosecondsNow))
            waitingCounts[client, default: 0] += 1
            return []
        case .always:
            return [reply(client, header, ProduceResponse(partition: request.partition, baseOffset: baseOffset, durability: .onDisk))]
        case .interval, .never:
            let durability: Durability = state.policy == .never ? .pageCache : .syncScheduled
            let ack = reply(client, header, ProduceResponse(partition: request.partition, baseOffset: baseOffset, durability: durability))
            guard case .appended = outcome else { return [ack] }
            return [ack] + wakeParkedFetches(state.key, now: now)
        }
    }

    /// Throws ``ErrorCode/keyConflict`` unless the last record of the condition's key in
    /// `state`'s log (appended, synced or not: appends are checked in the order they are made)
    /// is at the condition's offset.
    private func check(_ condition: KeyCondition, on state: PartitionState) throws(WireError) {
        let last: Int64
        do {
            last = try state.log.lastOffset(ofKey: condition.key) ?? -1
        } catch {
            throw WireError(.storageError, "the key index of \(state.key) could not be read, nothing was stored: \(error.message)")
        }
        guard last == condition.lastOffset else {
            let expected = condition.lastOffset == -1 ? "no record" : "its last record at offset \(condition.lastOffset)"
            let found = last == -1 ? "it has none" : "its last record is at offset \(last)"
            throw WireError(.keyConflict, "conditional append to \(state.key) refused: the batch expected key '\(Self.printable(condition.key))' to have \(expected), but \(found); nothing was stored",
                            details: ["lastOffset": last])
        }
    }

    /// A key for a message: UTF-8 as is (at most 64 characters), else hex.
    private static func printable(_ key: [UInt8]) -> String {
        if let text = String(validating: key, as: UTF8.self), !text.contains(where: { $0.isNewline }) {
            return text.count > 64 ? text.prefix(64) + "…" : text
        }
        return key.prefix(32).map { String(format: "%02x", $0) }.joined() + (key.count > 32 ? "…" : "")
    }

    /// Answers a fetch of one key's records at once (no long poll), through the key index.
    private func fetchKey(client: ClientID, header: FrameHeader, request: FetchKeyRequest) throws(WireError) -> BrokerAction {
        let state = try partition(try TopicName(request.topic), request.partition, creating: false)
        let log = state.log
        guard request.offset >= 0, request.offset <= state.visibleEnd else {
            throw WireError(.offsetOutOfRange, "offset \(request.offset) is outside \(state.key), which holds \(log.logStartOffset) to \(state.visibleEnd)",
                            details: ["earliest": log.logStartOffset, "latest": state.visibleEnd])
        }
        let found: KeySlices
        do {
            let maxBytes = min(Int(max(request.maxBytes, 1)), configuration.maxFetchBytes)
            found = try log.read(key: request.key, from: request.offset, maxBytes: maxBytes, endOffset: state.visibleEnd)
        } catch {
            throw WireError(.storageError, "read of key '\(Self.printable(request.key))' in \(state.key) failed: \(error.message)")
        }
        let body = FetchKeyResponse(partition: request.partition, logStartOffset: log.logStartOffset, logEndOffset: state.visibleEnd,
                                    nextOffset: found.nextOffset, lastOffset: found.lastOffset ?? -1)
        return .reply(to: client, frames: [.bytes(header.reply().encoded()), .bytes(body.encoded()), .logSlices(found.slices)])
    }

    /// Checks a produced batch against the broker's limits and its own header (structure,
    /// checksum, and every header field the records can confirm, timestamps included).
    /// Collects the batch's keys into `keys` on the way, for the key index.
    private func checkProduced(_ bytes: UnsafeRawBufferPointer, keys: inout BatchKeys) throws(WireError) -> RecordBatch.Header {
        guard bytes.count <= configuration.maxBatchBytes else {
            metrics.limitRefused("max.batch.bytes")
            throw WireError(.recordTooLarge, "batch of \(bytes.count) bytes exceeds the broker's limit of \(configuration.maxBatchBytes) bytes (max.batch.bytes)")
        }
        let batchHeader = try RecordBatch.validate(bytes, maxRecordBytes: configuration.maxRecordBytes, checkingTimestamps: true, allowingCompacted: false,
                                                   onKey: { delta, key in keys.add(offsetDelta: delta, key: key) })
        guard batchHeader.recordCount <= configuration.maxRecordsPerBatch else {
            metrics.limitRefused("max.records.per.batch")
            throw WireError(.recordTooLarge, "batch holds \(batchHeader.recordCount) records; the limit is \(configuration.maxRecordsPerBatch) (max.records.per.batch)")
        }
        return batchHeader
    }

    private func fetch(client: ClientID, header: FrameHeader, request: FetchRequest, now: Int64) throws(WireError) -> [BrokerAction] {
        let state = try partition(try TopicName(request.topic), request.partition, creating: false)
        let wait = Int64(min(Int(request.maxWaitMilliseconds), configuration.maxFetchWaitMilliseconds))
        let fetch = ParkedFetch(client: client, header: header, request: request, key: state.key, deadline: now + wait)
        if wait == 0 || isShutDown { return [answer(fetch)] }
        if let action = answerIfSatisfied(fetch) { return [action] }
        let parked = parkedCounts[client, default: 0]
        guard parked < configuration.maxParkedFetchesPerClient else {
            metrics.limitRefused("max.parked.fetches.per.client")
            throw WireError(.invalidRequest, "this client already has \(parked) fetches waiting; the limit is \(configuration.maxParkedFetchesPerClient) (max.parked.fetches.per.client)")
        }
        parkedCounts[client] = parked + 1
        parkedFetches[state.key, default: []].append(fetch)
        earliestParkedDeadline = min(earliestParkedDeadline ?? fetch.deadline, fetch.deadline)
        return []
    }

    /// Throws ``ErrorCode/invalidRequest`` if `client` has as many requests waiting for a sync as
    /// it may (``BrokerConfiguration/maxWaitingRequestsPerClient``).
    func checkWaiting(_ client: ClientID) throws(WireError) {
        let waiting = waitingCounts[client, default: 0]
        guard waiting < configuration.maxWaitingRequestsPerClient else {
            metrics.limitRefused("max.waiting.requests.per.client")
            throw WireError(.invalidRequest, "this client has \(waiting) requests waiting for a sync; the limit is \(configuration.maxWaitingRequestsPerClient) (max.waiting.requests.per.client); wait for their replies")
        }
    }

    /// Counts a commit written for `client` that now waits for its sync.
    func noteWaiting(_ client: ClientID) {
        waitingCounts[client, default: 0] += 1
    }

    /// `actions` (replies to waiting produces and commits), after forgetting that their clients wait.
    func delivered(_ actions: [BrokerAction]) -> [BrokerAction] {
        for case .reply(let client, _) in actions {
            let remaining = waitingCounts[client, default: 1] - 1
            waitingCounts[client] = remaining > 0 ? remaining : nil
        }
        return actions
    }

    /// Forgets a parked fetch that was just answered.
    private func unpark(_ fetch: ParkedFetch) {
        let remaining = parkedCounts[fetch.client, default: 1] - 1
        parkedCounts[fetch.client] = remaining > 0 ? remaining : nil
    }

    private func listOffsets(_ request: ListOffsetsRequest) throws(WireError) -> ListOffsetsResponse {
        let state = try partition(try TopicName(request.topic), request.partition, creating: false)
        let offset: Int64
        switch request.spec {
        case .earliest: offset = state.log.logStartOffset
        case .latest: offset = state.visibleEnd
        default:
            do {
                offset = min(try state.log.offset(atOrAfterTimestamp: request.spec.rawValue), state.visibleEnd)
            } catch {
                throw WireError(.storageError, "offset lookup in \(state.key) failed: \(error.message)")
            }
        }
        return ListOffsetsResponse(partition: request.partition, offset: offset)
    }

    /// Describes the named topics (all without names); with ``MetadataRequest/allowAutoCreation``
    /// creates the missing ones the client may produce to, where auto-creation is on.
    private func metadata(_ request: MetadataRequest, identity: String?) -> MetadataResponse {
        let names = request.topics.isEmpty ? topics.keys.sorted().map(\.rawValue) : request.topics
        let described = names.map { name -> MetadataResponse.Topic in
            do throws(WireError) {
                let topic = try TopicName(name)
                if topics[topic] == nil, request.allowAutoCreation {
                    try authorize(identity, .produce, [name], opCode: .metadata)
                    try createIfAllowed(topic, creating: true)
                }
                guard let partitions = topics[topic] else {
                    return MetadataResponse.Topic(name: name, errorCode: .unknownTopic, partitions: [])
                }
                return MetadataResponse.Topic(name: name, partitions: partitions.map {
                    MetadataResponse.Partition(partition: $0.key.partition, logStartOffset: $0.log.logStartOffset, logEndOffset: $0.visibleEnd)
                })
            } catch {
                return MetadataResponse.Topic(name: name, errorCode: error.code, partitions: [])
            }
        }
        return MetadataResponse(brokerVersion: Broker.version, topics: described)
    }

    private func createTopic(_ request: CreateTopicRequest) throws(WireError) -> CreateTopicResponse {
        let name = try TopicName(request.name)
        guard topics[name] == nil else { throw WireError(.topicAlreadyExists, "topic '\(name)' already exists") }
        try create(name, TopicMetadata(partitions: request.partitions, settings: request.settings))
        return CreateTopicResponse(name: name.rawValue, partitions: request.partitions)
    }

    private func describeTopic(_ request: DescribeTopicRequest) throws(WireError) -> DescribeTopicResponse {
        let name = try TopicName(request.name)
        guard let states = topics[name], let first = states.first else { throw WireError(.unknownTopic, "topic '\(name)' does not exist") }
        return DescribeTopicResponse(name: name.rawValue, settings: LogSettings.settings(of: first.log.configuration),
                                     topicSettings: topicSettings[name] ?? [:], partitions: states.map {
            DescribeTopicResponse.Partition(partition: $0.key.partition, logStartOffset: $0.log.logStartOffset, logEndOffset: $0.visibleEnd,
                                            sizeBytes: Int64($0.log.sizeInBytes), segmentCount: Int32(clamping: $0.log.segmentCount),
                                            writeError: $0.offlineReason ?? writeFaults[.partition($0.key)]?.reason ?? "")
        })
    }

    /// Deletes a topic. Refused (``ErrorCode/groupNotEmpty``) while a group with live members
    /// consumes it. The directory goes first (renamed away durably, so a failure changes
    /// nothing); then produces waiting for a sync and parked fetches on its partitions get
    /// ``ErrorCode/unknownTopic`` ("was deleted"), its logs close, and it is forgotten. Groups'
    /// committed offsets on it are kept (`spool groups reset` moves them if it is created again).
    private func deleteTopic(client: ClientID, header: FrameHeader, _ request: DeleteTopicRequest) throws(WireError) -> [BrokerAction] {
        let name = try TopicName(request.name)
        guard let states = topics[name] else { throw WireError(.unknownTopic, "topic '\(name)' does not exist") }
        if let group = groups.groupConsuming(name.rawValue) {
            throw WireError(.groupNotEmpty, "group '\(group)' has live members consuming topic '\(name)'; stop them before deleting it")
        }
        do throws(StorageError) {
            try dataDirectory.deleteTopic(name)
        } catch {
            throw WireError(.storageError, "deleting topic '\(name)' failed: \(error.message)")
        }
        let gone = WireError(.unknownTopic, "topic '\(name)' was deleted")
        var actions: [BrokerAction] = []
        for state in states {
            actions += delivered(state.failAcknowledgements(error: gone))
            for fetch in parkedFetches.removeValue(forKey: state.key) ?? [] {
                actions.append(errorReply(fetch.client, fetch.header, gone))
                unpark(fetch)
            }
            dirty.remove(state.key)
            writeFaults.remove(.partition(state.key))
            state.log.close()
            state.metrics.destroy()
        }
        topics[name] = nil
        topicSettings[name] = nil
        deletedTopics += 1
        logger.info("deleted topic", metadata: ["topic": "\(name)", "partitions": "\(states.count)"])
        return actions + [reply(client, header, DeleteTopicResponse(name: name.rawValue, partitions: Int32(states.count)))]
    }

    // MARK: Topics and partitions

    /// The partition's state. An unknown topic is created first when `creating` (a produce, a
    /// group join) and auto-creation is on; otherwise it is ``ErrorCode/unknownTopic``, so a
    /// reader's typo leaves nothing behind.
    func partition(_ name: TopicName, _ partition: Int32, creating: Bool) throws(WireError) -> PartitionState {
        if topics[name] == nil { try createIfAllowed(name, creating: creating) }
        guard let partitions = topics[name], partitions.indices.contains(Int(partition)) else {
            throw WireError(.unknownPartition, "topic '\(name)' has no partition \(partition) (it has \(topics[name]?.count ?? 0))")
        }
        return partitions[Int(partition)]
    }

    /// Creates `name` with the default settings when `creating` and auto-creation is on; else
    /// throws ``ErrorCode/unknownTopic``.
    private func createIfAllowed(_ name: TopicName, creating: Bool) throws(WireError) {
        guard creating, configuration.autoCreateTopics else {
            throw WireError(.unknownTopic, "topic '\(name)' does not exist" + (creating ? " (auto.create.topics is off)" : ""))
        }
        try create(name, TopicMetadata(partitions: configuration.defaultPartitions))
    }

    private func create(_ name: TopicName, _ metadata: TopicMetadata) throws(WireError) {
        guard topics.count < configuration.maxTopics else {
            metrics.limitRefused("max.topics")
            throw WireError(.invalidRequest, "the broker has \(topics.count) topics; the limit is \(configuration.maxTopics) (max.topics)")
        }
        guard (1...DataDirectory.maxPartitions).contains(metadata.partitions) else {
            throw WireError(.invalidRequest, "a topic needs 1 to \(DataDirectory.maxPartitions) partitions, not \(metadata.partitions)")
        }
        do throws(StorageError) {
            try dataDirectory.createTopic(name, metadata)
            try openTopic(name, metadata)
        } catch {
            throw WireError(error.code == .invalidArgument ? .invalidRequest : .storageError, "creating topic '\(name)' failed: \(error.message)")
        }
        logger.info("created topic", metadata: ["topic": "\(name)", "partitions": "\(metadata.partitions)", "settings": "\(metadata.settings)"])
    }

    /// Opens the topic's partition logs with the broker's log settings overridden by the topic's.
    private func openTopic(_ name: TopicName, _ metadata: TopicMetadata) throws(StorageError) {
        try openTopics([name: metadata])
    }

    /// Opens the partition logs of `topics`, each with the broker's log settings overridden by its
    /// topic's, on one thread per core (each partition's files are its own; the file cache and the
    /// metrics are thread-safe). Throws the first failure, after every open has ended.
    private func openTopics(_ found: [TopicName: TopicMetadata]) throws(StorageError) {
        var planned: [(key: PartitionKey, configuration: LogConfiguration)] = []
        for (name, metadata) in found.sorted(by: { $0.key < $1.key }) {
            let logConfiguration = try LogSettings.apply(metadata.settings, to: configuration.log)
            planned += (0..<metadata.partitions).map { (PartitionKey(topic: name, partition: $0), logConfiguration) }
        }
        // Each slot is written by one worker, then read here after all have ended; the data
        // directory's open path reads only constants of it.
        nonisolated(unsafe) let results = UnsafeMutableBufferPointer<Result<PartitionState, StorageError>>.allocate(capacity: planned.count)
        defer { results.deinitialize().deallocate() }
        nonisolated(unsafe) let dataDirectory = dataDirectory
        let (opens, workers) = (planned, max(1, min(ProcessInfo.processInfo.activeProcessorCount, planned.count)))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for number in stride(from: worker, to: opens.count, by: workers) {
                let (key, logConfiguration) = opens[number]
                (results.baseAddress! + number).initialize(to: Result { () throws(StorageError) in
                    let log = try dataDirectory.openPartition(key.topic, partition: key.partition, configuration: logConfiguration)
                    return try PartitionState(key: key, log: log)
                })
            }
        }
        for (name, metadata) in found {
            topics[name] = []
            topicSettings[name] = metadata.settings
        }
        for result in results {
            let state = try result.get()
            state.epoch = deletedTopics << 32
            topics[state.key.topic, default: []].append(state)
        }
    }

    func partitionState(_ key: PartitionKey) -> PartitionState? {
        guard let partitions = topics[key.topic], partitions.indices.contains(Int(key.partition)) else { return nil }
        return partitions[Int(key.partition)]
    }

    // MARK: Fetch serving

    private func wakeParkedFetches(_ key: PartitionKey, now: Int64) -> [BrokerAction] {
        guard let parked = parkedFetches[key] else { return [] }
        var actions: [BrokerAction] = []
        var kept: [ParkedFetch] = []
        for fetch in parked {
            if let action = fetch.deadline <= now ? answer(fetch) : answerIfSatisfied(fetch) {
                actions.append(action)
                unpark(fetch)
            } else {
                kept.append(fetch)
            }
        }
        parkedFetches[key] = kept.isEmpty ? nil : kept
        return actions
    }

    /// Answers `fetch` now with whatever data it can have; errors become error replies.
    private func answer(_ fetch: ParkedFetch) -> BrokerAction {
        do throws(WireError) {
            let (slice, body, metrics) = try available(fetch)
            return fetchReply(fetch, slice, body, metrics)
        } catch {
            return errorReply(fetch.client, fetch.header, error)
        }
    }

    /// Answers `fetch` if at least its `minBytes` are available, nil if it must keep waiting;
    /// errors become error replies.
    private func answerIfSatisfied(_ fetch: ParkedFetch) -> BrokerAction? {
        do throws(WireError) {
            let (slice, body, metrics) = try available(fetch)
            guard (slice?.length ?? 0) >= Int(max(fetch.request.minBytes, 1)) else { return nil }
            return fetchReply(fetch, slice, body, metrics)
        } catch {
            return errorReply(fetch.client, fetch.header, error)
        }
    }

    /// The bytes `fetch` can have now (nil: none below the visible end), its reply body, and the
    /// partition's metrics (counted once the reply is sent).
    private func available(_ fetch: ParkedFetch) throws(WireError) -> (LogSlice?, FetchResponse, BrokerMetrics.Partition) {
        guard let state = partitionState(fetch.key) else {
            throw WireError(.unknownTopic, "topic '\(fetch.key.topic)' no longer exists")
        }
        let request = fetch.request
        let log = state.log
        guard request.offset >= log.logStartOffset, request.offset <= log.logEndOffset else {
            throw WireError(.offsetOutOfRange,
                            "offset \(request.offset) is outside \(state.key), which holds \(log.logStartOffset) to \(state.visibleEnd)",
                            details: ["earliest": log.logStartOffset, "latest": state.visibleEnd])
        }
        let slice: LogSlice?
        do {
            let maxBytes = min(Int(max(request.maxBytes, 1)), configuration.maxFetchBytes)
            slice = try log.read(from: request.offset, maxBytes: maxBytes, endOffset: state.visibleEnd)
        } catch {
            throw WireError(error.code == .offsetOutOfRange ? .offsetOutOfRange : .storageError, "read of \(state.key) failed: \(error.message)")
        }
        return (slice, FetchResponse(partition: request.partition, logStartOffset: log.logStartOffset, logEndOffset: state.visibleEnd), state.metrics)
    }

    private func fetchReply(_ fetch: ParkedFetch, _ slice: LogSlice?, _ body: FetchResponse, _ metrics: BrokerMetrics.Partition) -> BrokerAction {
        if let slice {
            metrics.recordsOut.increment(by: slice.nextOffset - max(fetch.request.offset, slice.firstOffset))
            metrics.bytesOut.increment(by: slice.length)
        }
        return .reply(to: fetch.client, frames: [.bytes(fetch.header.reply().encoded()), .bytes(body.encoded()), .logSlices(slice.map { [$0] } ?? [])])
    }

    // MARK: Frames

    private func bodyFrames<Frame: RequestFrame>(_ frames: [Frame], header: FrameHeader) throws(WireError) -> [Frame] {
        let expected = header.opCode == .produce ? 2 : 1
        guard frames.count - 1 == expected else {
            throw WireError(.malformedRequest, "\(header.opCode) expects \(expected) frame(s) after the header, got \(frames.count - 1)")
        }
        return Array(frames.dropFirst())
    }

    func decode<Frame: RequestFrame, T>(_ frame: Frame, _ body: (UnsafeRawBufferPointer) throws -> T) throws(WireError) -> T {
        do {
            return try frame.withUnsafeBytes { bytes in try body(bytes) }
        } catch let error as WireError {
            throw error
        } catch {
            throw WireError(.unknown, "\(error)")
        }
    }
}

/// What a produce did with its batch.
private enum ProduceOutcome {
    /// Appended now.
    case appended(AppendResult)
    /// A retry of a batch stored before, found where it was stored.
    case duplicate(ProducerStates.StoredBatch)
}

func reply(_ client: ClientID, _ header: FrameHeader, _ message: some WireMessage) -> BrokerAction {
    .reply(to: client, frames: [.bytes(header.reply().encoded()), .bytes(message.encoded())])
}

func errorReply(_ client: ClientID, _ header: FrameHeader, _ error: WireError) -> BrokerAction {
    .reply(to: client, frames: [.bytes(header.reply(errorCode: error.code).encoded()), .bytes(ErrorResponse(error).encoded())])
}

/// A fetch waiting for data or for its deadline.
struct ParkedFetch {
    let client: ClientID
    let header: FrameHeader
    let request: FetchRequest
    let key: PartitionKey
    let deadline: Int64
}
