import Logging
import SpoolStorage
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
    private let logger: Logger
    private let dataDirectory: DataDirectory
    private var topics: [TopicName: [PartitionState]] = [:]
    private var parkedFetches: [PartitionKey: [ParkedFetch]] = [:]
    private var dirty: Set<PartitionKey> = []
    private var isShutDown = false

    /// Opens (and recovers) every topic under the data directory and takes its lock.
    /// Throws if another broker holds the directory or a log cannot be opened.
    public init(configuration: BrokerConfiguration, logger: Logger) throws(StorageError) {
        self.configuration = configuration
        self.logger = logger
        dataDirectory = try DataDirectory(path: configuration.dataDirectory, logger: logger)
        for (name, count) in try dataDirectory.existingTopics().sorted(by: { $0.key < $1.key }) {
            try openTopic(name, partitions: count)
        }
        let partitionCount = topics.values.reduce(0) { $0 + $1.count }
        logger.info("opened data directory", metadata: [
            "path": "\(configuration.dataDirectory)", "topics": "\(topics.count)", "partitions": "\(partitionCount)",
        ])
    }

    // MARK: Events

    /// Handles one request (`frames` without the routing identity) received at `now`
    /// (monotonic milliseconds). Returns the replies that are due now; a produce waiting for
    /// its sync or a parked fetch is answered by a later event.
    public func handle<Frame: RequestFrame>(client: ClientID, frames: [Frame], now: Int64) -> [BrokerAction] {
        guard let first = frames.first else { return [] }
        let header: FrameHeader
        do {
            header = try decode(first) { try FrameHeader.decode($0) }
        } catch {
            // Without a valid header there is no correlation id to answer; say it once per message at debug.
            logger.debug("dropped a message with an unreadable header", metadata: ["error": "\(error)"])
            return []
        }
        guard !header.isReply else { return [] }
        do throws(WireError) {
            guard header.version == FrameHeader.currentVersion else {
                throw WireError(.unsupportedVersion, "protocol version \(header.version) is not supported; this broker speaks \(FrameHeader.currentVersion)")
            }
            let body = try bodyFrames(frames, header: header)
            switch header.opCode {
            case .produce:
                return try produce(client: client, header: header, body: body[0], batch: body[1], now: now)
            case .fetch:
                return try fetch(client: client, header: header, request: decode(body[0]) { try FetchRequest.decode($0) }, now: now)
            case .listOffsets:
                return [reply(client, header, try listOffsets(decode(body[0]) { try ListOffsetsRequest.decode($0) }))]
            case .metadata:
                return [reply(client, header, metadata(try decode(body[0]) { try MetadataRequest.decode($0) }))]
            case .createTopic:
                return [reply(client, header, try createTopic(decode(body[0]) { try CreateTopicRequest.decode($0) }))]
            default:
                throw WireError(.unsupportedOperation, "operation \(header.opCode.rawValue) is not supported")
            }
        } catch {
            return [errorReply(client, header, error)]
        }
    }

    /// Records the outcome of a sync of `key`: on success everything below `result`'s offset is
    /// on disk; produces it covers are acknowledged and parked fetches may now be served.
    /// On failure, the produces the sync was meant to cover get a storage error.
    public func syncCompleted(_ key: PartitionKey, result: Result<Int64, StorageError>, now: Int64) -> [BrokerAction] {
        guard let state = partitionState(key) else { return [] }
        switch result {
        case .success(let end):
            guard end > state.durableEnd else { return [] }
            state.durableEnd = end
            var actions = state.acknowledge(upTo: end)
            if state.policy == .always { actions += wakeParkedFetches(key, now: now) }
            return actions
        case .failure(let error):
            logger.error("sync failed; produces it covered get an error", metadata: ["partition": "\(key)", "error": "\(error)"])
            return state.failAcknowledgements(error: WireError(.storageError, "sync of \(key) failed: \(error.message)"))
        }
    }

    /// Answers parked fetches whose wait ran out by `now`, with whatever data they can have.
    public func expireParkedFetches(now: Int64) -> [BrokerAction] {
        var actions: [BrokerAction] = []
        for (key, parked) in parkedFetches {
            var kept: [ParkedFetch] = []
            for fetch in parked {
                if fetch.deadline <= now {
                    actions.append(answer(fetch))
                } else {
                    kept.append(fetch)
                }
            }
            parkedFetches[key] = kept.isEmpty ? nil : kept
        }
        return actions
    }

    /// Sync work that is due at `now`: every partition appended to under `fsync: always`, and
    /// under `fsync: interval` those whose interval has passed. Submit each to the flusher and
    /// report back through ``syncCompleted(_:result:now:)``.
    public func takeSyncWork(now: Int64) -> [(PartitionKey, SyncWork)] {
        guard !dirty.isEmpty else { return [] }
        var work: [(PartitionKey, SyncWork)] = []
        for key in dirty {
            guard let state = partitionState(key) else { continue }
            switch state.policy {
            case .always:
                break
            case .interval(let milliseconds):
                guard now - state.lastSyncAt >= Int64(milliseconds) else { continue }
            case .never:
                continue
            }
            dirty.remove(key)
            state.lastSyncAt = now
            if let item = state.log.takeSyncWork() { work.append((key, item)) }
        }
        return work
    }

    /// The earliest moment something is due (a parked fetch expiring, an interval sync), in
    /// monotonic milliseconds, or nil if nothing waits on time.
    public var nextDeadline: Int64? {
        var deadline = parkedFetches.values.lazy.flatMap { $0 }.map(\.deadline).min()
        for key in dirty {
            guard let state = partitionState(key), case .interval(let milliseconds) = state.policy else { continue }
            deadline = min(deadline ?? .max, state.lastSyncAt + Int64(milliseconds))
        }
        return deadline
    }

    /// Starts a shutdown: answers every parked fetch and returns the sync work that makes
    /// every appended byte durable, whatever the policy. Run it, feed the results to
    /// ``syncCompleted(_:result:now:)`` (which sends the last acknowledgements), then ``close()``.
    public func beginShutdown() -> (actions: [BrokerAction], syncWork: [(PartitionKey, SyncWork)]) {
        isShutDown = true
        let actions = parkedFetches.values.flatMap { $0 }.map(answer)
        parkedFetches = [:]
        dirty = []
        var work: [(PartitionKey, SyncWork)] = []
        for partitions in topics.values {
            for state in partitions {
                if let item = state.log.takeSyncWork() { work.append((state.key, item)) }
            }
        }
        return (actions, work)
    }

    /// Closes every log and releases the data directory. Produces still waiting are answered
    /// with "broker shutting down".
    public func close() -> [BrokerAction] {
        var actions: [BrokerAction] = []
        for partitions in topics.values {
            for state in partitions {
                actions += state.failAcknowledgements(error: WireError(.brokerShuttingDown, "the broker stopped before \(state.key) was synced"))
                state.log.close()
            }
        }
        topics = [:]
        dataDirectory.close()
        return actions
    }

    // MARK: Operations

    private func produce<Frame: RequestFrame>(client: ClientID, header: FrameHeader, body: Frame, batch: Frame, now: Int64) throws(WireError) -> [BrokerAction] {
        let request = try decode(body) { try ProduceRequest.decode($0) }
        let state = try partition(try TopicName(request.topic), request.partition)
        let appended: AppendResult = try decode(batch) { bytes throws(WireError) in
            guard bytes.count <= configuration.maxBatchBytes else {
                throw WireError(.recordTooLarge, "batch of \(bytes.count) bytes exceeds the broker's limit of \(configuration.maxBatchBytes) bytes (max.batch.bytes)")
            }
            try RecordBatch.validate(bytes, maxRecordBytes: configuration.maxRecordBytes)
            do throws(StorageError) {
                return try state.log.append(bytes)
            } catch {
                throw WireError(.storageError, "append to \(state.key) failed: \(error.message)")
            }
        }
        dirty.insert(state.key)
        switch state.policy {
        case .always:
            state.pendingAcks.append(PendingAck(client: client, header: header, partition: request.partition,
                                                baseOffset: appended.baseOffset, lastOffset: appended.lastOffset))
            return []
        case .interval, .never:
            let durability: Durability = state.policy == .never ? .pageCache : .syncScheduled
            let ack = reply(client, header, ProduceResponse(partition: request.partition, baseOffset: appended.baseOffset, durability: durability))
            return [ack] + wakeParkedFetches(state.key, now: now)
        }
    }

    private func fetch(client: ClientID, header: FrameHeader, request: FetchRequest, now: Int64) throws(WireError) -> [BrokerAction] {
        let state = try partition(try TopicName(request.topic), request.partition)
        let wait = Int64(min(Int(request.maxWaitMilliseconds), configuration.maxFetchWaitMilliseconds))
        let fetch = ParkedFetch(client: client, header: header, request: request, key: state.key, deadline: now + wait)
        if wait == 0 || isShutDown { return [answer(fetch)] }
        if let action = answerIfSatisfied(fetch) { return [action] }
        parkedFetches[state.key, default: []].append(fetch)
        return []
    }

    private func listOffsets(_ request: ListOffsetsRequest) throws(WireError) -> ListOffsetsResponse {
        let state = try partition(try TopicName(request.topic), request.partition)
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

    private func metadata(_ request: MetadataRequest) -> MetadataResponse {
        let names = request.topics.isEmpty ? topics.keys.sorted().map(\.rawValue) : request.topics
        let described = names.map { name -> MetadataResponse.Topic in
            do throws(WireError) {
                guard let partitions = topics[try TopicName(name)] else {
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
        try create(name, partitions: request.partitions)
        return CreateTopicResponse(name: name.rawValue, partitions: request.partitions)
    }

    // MARK: Topics and partitions

    /// The partition's state, creating the topic first if it is unknown and auto-creation is on.
    private func partition(_ name: TopicName, _ partition: Int32) throws(WireError) -> PartitionState {
        if topics[name] == nil {
            guard configuration.autoCreateTopics else {
                throw WireError(.unknownTopic, "topic '\(name)' does not exist")
            }
            try create(name, partitions: configuration.defaultPartitions)
        }
        guard let partitions = topics[name], partitions.indices.contains(Int(partition)) else {
            throw WireError(.unknownPartition, "topic '\(name)' has no partition \(partition) (it has \(topics[name]?.count ?? 0))")
        }
        return partitions[Int(partition)]
    }

    private func create(_ name: TopicName, partitions: Int32) throws(WireError) {
        guard (1...DataDirectory.maxPartitions).contains(partitions) else {
            throw WireError(.invalidRequest, "a topic needs 1 to \(DataDirectory.maxPartitions) partitions, not \(partitions)")
        }
        do {
            try dataDirectory.createTopic(name, partitions: partitions)
            try openTopic(name, partitions: partitions)
        } catch {
            throw WireError(.storageError, "creating topic '\(name)' failed: \(error.message)")
        }
        logger.info("created topic", metadata: ["topic": "\(name)", "partitions": "\(partitions)"])
    }

    private func openTopic(_ name: TopicName, partitions: Int32) throws(StorageError) {
        var states: [PartitionState] = []
        for index in 0..<partitions {
            let log = try dataDirectory.openPartition(name, partition: index, configuration: configuration.log)
            states.append(PartitionState(key: PartitionKey(topic: name, partition: index), log: log))
        }
        topics[name] = states
    }

    private func partitionState(_ key: PartitionKey) -> PartitionState? {
        guard let partitions = topics[key.topic], partitions.indices.contains(Int(key.partition)) else { return nil }
        return partitions[Int(key.partition)]
    }

    // MARK: Fetch serving

    private func wakeParkedFetches(_ key: PartitionKey, now: Int64) -> [BrokerAction] {
        guard let parked = parkedFetches[key] else { return [] }
        var actions: [BrokerAction] = []
        var kept: [ParkedFetch] = []
        for fetch in parked {
            if let action = fetch.deadline <= now ? answer(fetch) : answerIfSatisfied(fetch) { actions.append(action) } else { kept.append(fetch) }
        }
        parkedFetches[key] = kept.isEmpty ? nil : kept
        return actions
    }

    /// Answers `fetch` now with whatever data it can have; errors become error replies.
    private func answer(_ fetch: ParkedFetch) -> BrokerAction {
        do throws(WireError) {
            let (slice, body) = try available(fetch)
            return fetchReply(fetch, slice, body)
        } catch {
            return errorReply(fetch.client, fetch.header, error)
        }
    }

    /// Answers `fetch` if at least its `minBytes` are available, nil if it must keep waiting;
    /// errors become error replies.
    private func answerIfSatisfied(_ fetch: ParkedFetch) -> BrokerAction? {
        do throws(WireError) {
            let (slice, body) = try available(fetch)
            guard (slice?.length ?? 0) >= Int(max(fetch.request.minBytes, 1)) else { return nil }
            return fetchReply(fetch, slice, body)
        } catch {
            return errorReply(fetch.client, fetch.header, error)
        }
    }

    /// The bytes `fetch` can have now (nil: none below the visible end) and its reply body.
    private func available(_ fetch: ParkedFetch) throws(WireError) -> (LogSlice?, FetchResponse) {
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
            slice = try log.read(from: request.offset, maxBytes: Int(max(request.maxBytes, 1)), endOffset: state.visibleEnd)
        } catch {
            throw WireError(error.code == .offsetOutOfRange ? .offsetOutOfRange : .storageError, "read of \(state.key) failed: \(error.message)")
        }
        return (slice, FetchResponse(partition: request.partition, logStartOffset: log.logStartOffset, logEndOffset: state.visibleEnd))
    }

    private func fetchReply(_ fetch: ParkedFetch, _ slice: LogSlice?, _ body: FetchResponse) -> BrokerAction {
        .reply(to: fetch.client, frames: [.bytes(fetch.header.reply().encoded()), .bytes(body.encoded()),
                                          slice.map(ReplyFrame.logSlice) ?? .bytes([])])
    }

    // MARK: Frames

    private func bodyFrames<Frame: RequestFrame>(_ frames: [Frame], header: FrameHeader) throws(WireError) -> [Frame] {
        let expected = header.opCode == .produce ? 2 : 1
        guard frames.count - 1 == expected else {
            throw WireError(.malformedRequest, "\(header.opCode) expects \(expected) frame(s) after the header, got \(frames.count - 1)")
        }
        return Array(frames.dropFirst())
    }

    private func decode<Frame: RequestFrame, T>(_ frame: Frame, _ body: (UnsafeRawBufferPointer) throws -> T) throws(WireError) -> T {
        do {
            return try frame.withUnsafeBytes { bytes in try body(bytes) }
        } catch let error as WireError {
            throw error
        } catch {
            throw WireError(.unknown, "\(error)")
        }
    }
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
