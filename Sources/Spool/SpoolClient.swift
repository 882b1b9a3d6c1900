import Foundation
import Logging
import Synchronization
import SpoolWire

/// A connection to one Spool broker: publish records, read them back, manage topics.
///
/// One I/O thread owns the client's ZeroMQ socket; every method may be called from any task,
/// concurrently, and many requests travel at once (matched to replies by correlation id).
/// ZeroMQ reconnects by itself after a broker restart; a request in flight when the
/// connection drops fails with a retriable ``SpoolError/Code/connectionLost``.
///
/// ```swift
/// let client = try await SpoolClient(endpoint: "tcp://127.0.0.1:7070")
/// let result = try await client.publish(to: "orders", key: Array("order-1".utf8), value: Array(#"{"id":1}"#.utf8))
/// for try await record in client.records(from: "orders", startingAt: .earliest) { print(record.offset) }
/// ```
public final class SpoolClient: Sendable {
    /// The broker endpoint, e.g. `tcp://127.0.0.1:7070`.
    public let endpoint: String
    /// The settings in force.
    public let configuration: ClientConfiguration
    let connection: Connection
    private let partitionCounts = Mutex<[String: Int32]>([:])
    private let roundRobin = Atomic<UInt32>(0)

    /// Connects and waits for the broker's first answer. Throws ``SpoolError/Code/connectionFailed``
    /// at once if the connection is refused, or ``SpoolError/Code/timedOut`` after
    /// `configuration.connectTimeout` without an answer.
    public init(endpoint: String = "tcp://127.0.0.1:7070", configuration: ClientConfiguration = ClientConfiguration(),
                logger: Logger = Logger(label: "spool.client")) async throws(SpoolError) {
        self.endpoint = endpoint
        self.configuration = configuration
        connection = try Connection(endpoint: endpoint, curve: configuration.curve, logger: logger)
        do {
            _ = try await connection.request(.metadata, [MetadataRequest(topics: []).encoded()],
                                             timeout: configuration.connectTimeout, failIfUnreachable: true)
        } catch {
            connection.close()
            if error.code == .timedOut {
                throw SpoolError(.connectionFailed, "no answer from \(endpoint) within \(configuration.connectTimeout) (is spoold running there?)")
            }
            throw error
        }
    }

    deinit { connection.close() }

    /// Closes the connection; waiting calls fail with ``SpoolError/Code/clientClosed``. Idempotent.
    public func close() { connection.close() }

    // MARK: Publishing

    /// Publishes one record and returns where it landed once the broker acknowledged it (under
    /// `fsync: always`, once it is on disk). Without `partition`, a keyed record goes to
    /// `murmur2(key) mod partitions` (Kafka's default partitioner) and an unkeyed one round-robin.
    @discardableResult
    public func publish(to topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: [UInt8],
                        headers: [RecordHeader] = []) async throws(SpoolError) -> PublishResult {
        try await publish(to: topic, partition: partition, records: [OutgoingRecord(key: key, value: value, headers: headers)])
    }

    /// Publishes records as one batch to one partition (`partition`, or the one chosen for the
    /// first record's key) and returns where the batch landed. The batch is appended whole or
    /// not at all; its records get consecutive offsets.
    @discardableResult
    public func publish(to topic: String, partition: Int32? = nil, records: [OutgoingRecord]) async throws(SpoolError) -> PublishResult {
        guard let first = records.first else { throw SpoolError(.invalidArgument, "publish needs at least one record") }
        try Self.checkTopicName(topic)
        let target: Int32
        if let partition { target = partition } else { target = try await choosePartition(topic, key: first.key) }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        var builder = RecordBatchBuilder()
        for record in records {
            builder.append(timestamp: record.timestamp ?? now, key: record.key, value: record.value, headers: record.headers)
        }
        let batch = builder.finish()
        guard batch.count <= configuration.maxBatchBytes else {
            let what = records.count == 1 ? "record" : "batch of \(records.count) records"
            throw SpoolError(.recordTooLarge, "\(what) is \(batch.count) bytes encoded; the limit is \(configuration.maxBatchBytes) bytes")
        }
        let reply = try await call(.produce, [ProduceRequest(topic: topic, partition: target).encoded(), batch])
        let response = try decode(ProduceResponse.self, reply)
        return PublishResult(topic: topic, partition: response.partition, baseOffset: response.baseOffset,
                             count: records.count, durability: response.durability)
    }

    // MARK: Reading

    /// The records of one partition from `start` on, as an `AsyncSequence` that waits for new
    /// records (long poll) and never ends by itself; break out of the loop or cancel the task
    /// to stop. Survives broker restarts (retriable errors are retried with backoff). Reading never
    /// creates a topic: one that does not exist ends the loop with ``SpoolError/Code/unknownTopic``.
    public func records(from topic: String, partition: Int32 = 0, startingAt start: StartPosition = .earliest) -> RecordSequence {
        RecordSequence(client: self, topic: topic, partition: partition, start: start)
    }

    /// One fetch: records at or after `offset` (up to `fetchMaxBytes`), waiting up to `maxWait`
    /// for some to arrive. Continue from the result's ``FetchedRecords/nextOffset``: in a
    /// compacted topic a fetch may cover offsets whose records the cleaner removed, and return
    /// fewer records than offsets, or none.
    public func fetch(from topic: String, partition: Int32 = 0, offset: Int64,
                      maxWait: Duration = .zero) async throws(SpoolError) -> FetchedRecords {
        try Self.checkTopicName(topic)
        let reply = try await call(.fetch, fetchRequest(topic, partition: partition, offset: offset, maxWait: maxWait), extraTimeout: maxWait)
        return try fetchResult(reply, topic: topic, partition: partition, offset: offset)
    }

    /// The body of a fetch of `topic`/`partition` from `offset`, long-polling up to `maxWait`.
    func fetchRequest(_ topic: String, partition: Int32, offset: Int64, maxWait: Duration) -> [[UInt8]] {
        [FetchRequest(topic: topic, partition: partition, offset: offset, maxWaitMilliseconds: UInt32(clamping: maxWait.wholeMilliseconds),
                      minBytes: 1, maxBytes: UInt32(clamping: configuration.fetchMaxBytes)).encoded()]
    }

    /// The records at or after `offset` in a fetch reply, where the next fetch starts, and the
    /// partition's visible end.
    func fetchResult(_ reply: Reply, topic: String, partition: Int32, offset: Int64) throws(SpoolError) -> FetchedRecords {
        let (response, page) = try recordsReply(reply, FetchResponse.self, topic: topic, partition: partition, offset: offset)
        return FetchedRecords(records: page.records, nextOffset: page.nextOffset, logEndOffset: response.logEndOffset)
    }

    /// The body of a reply that carries a records frame (fetch, fetch key), the records in that
    /// frame at or after `offset`, and the offset after its last whole batch (`offset` if none).
    func recordsReply<Body: WireMessage>(_ reply: Reply, _ body: Body.Type, topic: String, partition: Int32,
                                         offset: Int64) throws(SpoolError) -> (Body, DecodedBatches) {
        guard reply.frames.count == 2 else {
            throw SpoolError(.protocolViolation, "\(Body.opCode) reply has \(reply.frames.count) frames after the header, expected 2")
        }
        let response = try decode(Body.self, reply)
        do {
            let records = try reply.frames[1].withUnsafeBytes { bytes throws(WireError) in
                try decodeBatches(bytes, topic: topic, partition: partition, from: offset)
            }
            return (response, records)
        } catch {
            throw SpoolError(.protocolViolation, "\(Body.opCode) reply from \(topic)/\(partition): \(error)")
        }
    }

    /// The offset of `spec` in a partition: the earliest stored, the latest (next to be
    /// written), or the first at or after a time.
    public func offset(of topic: String, partition: Int32 = 0, _ spec: OffsetSpec) async throws(SpoolError) -> Int64 {
        try Self.checkTopicName(topic)
        let reply = try await call(.listOffsets, [ListOffsetsRequest(topic: topic, partition: partition, spec: spec).encoded()])
        return try decode(ListOffsetsResponse.self, reply).offset
    }

    // MARK: Topics

    /// Describes topics (all of them when `names` is empty). Unknown names are skipped, never created.
    public func topics(_ names: [String] = []) async throws(SpoolError) -> [TopicInfo] {
        let reply = try await call(.metadata, [MetadataRequest(topics: names).encoded()])
        let response = try decode(MetadataResponse.self, reply)
        return response.topics.filter { $0.errorCode == .none }.map { topic in
            TopicInfo(name: topic.name, partitions: topic.partitions.map {
                PartitionInfo(partition: $0.partition, earliestOffset: $0.logStartOffset, latestOffset: $0.logEndOffset)
            })
        }
    }

    /// Creates a topic with `partitions` partitions and `settings` that override the broker's
    /// defaults for it (`retention.ms`, `retention.bytes`, `fsync`, `segment.bytes`, … as in
    /// `broker-config/spoold.yaml`). Throws ``SpoolError/Code/topicAlreadyExists`` if it exists and
    /// ``SpoolError/Code/invalidRequest`` naming a bad setting.
    public func createTopic(_ name: String, partitions: Int32 = 1, settings: [String: String] = [:]) async throws(SpoolError) {
        try Self.checkTopicName(name)
        let request = CreateTopicRequest(name: name, partitions: partitions, settings: settings)
        _ = try decode(CreateTopicResponse.self, try await call(.createTopic, [request.encoded()]))
        partitionCounts.withLock { $0[name] = partitions }
    }

    /// Describes one topic: every log setting in force (`fsync`, `retention.ms`, … with `-1` for
    /// unlimited), the settings the topic sets itself, and per partition its offsets, bytes on disk
    /// and segment count. Throws ``SpoolError/Code/unknownTopic`` if it does not exist.
    public func describeTopic(_ name: String) async throws(SpoolError) -> TopicDescription {
        try Self.checkTopicName(name)
        return TopicDescription(try decode(DescribeTopicResponse.self, try await call(.describeTopic, [DescribeTopicRequest(name: name).encoded()])))
    }

    /// Deletes a topic and its data, and returns how many partitions it had. Throws
    /// ``SpoolError/Code/unknownTopic`` if it does not exist and ``SpoolError/Code/groupNotEmpty``
    /// while a consumer group with live members consumes it. Readers waiting on it get
    /// ``SpoolError/Code/unknownTopic``; groups keep their committed offsets on it.
    @discardableResult
    public func deleteTopic(_ name: String) async throws(SpoolError) -> Int32 {
        try Self.checkTopicName(name)
        let response = try decode(DeleteTopicResponse.self, try await call(.deleteTopic, [DeleteTopicRequest(name: name).encoded()]))
        partitionCounts.withLock { $0[name] = nil }
        return response.partitions
    }

    // MARK: Internals

    func call(_ opCode: OpCode, _ body: [[UInt8]], extraTimeout: Duration = .zero) async throws(SpoolError) -> Reply {
        try Self.checked(try await connection.request(opCode, body, timeout: configuration.requestTimeout + extraTimeout)).get()
    }

    /// ``call(_:_:extraTimeout:)`` without a task: queues the request and returns; `completion`
    /// gets the reply (or the broker's error) on the connection's I/O thread, and must not block.
    /// `id` (from ``Connection/makeRequestID()``) lets the caller cancel it. Returns the
    /// client-closed error, without calling `completion`, if the client is closed.
    func send(id: UInt64? = nil, _ opCode: OpCode, _ body: [[UInt8]], extraTimeout: Duration = .zero,
              completion: @escaping @Sendable (Result<Reply, SpoolError>) -> Void) -> SpoolError? {
        connection.send(id: id, opCode, body, timeout: configuration.requestTimeout + extraTimeout) { completion($0.flatMap(Self.checked)) }
            ? nil : connection.closedError
    }

    /// The reply, or the error it carries.
    private static func checked(_ reply: Reply) -> Result<Reply, SpoolError> {
        guard reply.header.errorCode == .none else {
            let error = reply.frames.first.flatMap { frame in try? frame.withUnsafeBytes { try ErrorResponse.decode($0) } }
            return .failure(SpoolError(error?.error(code: reply.header.errorCode) ?? WireError(reply.header.errorCode, "the broker answered \(reply.header.errorCode)")))
        }
        return .success(reply)
    }

    func decode<Message: WireMessage>(_ type: Message.Type, _ reply: Reply) throws(SpoolError) -> Message {
        guard let body = reply.frames.first else { throw SpoolError(.protocolViolation, "\(Message.opCode) reply has no body") }
        do {
            return try body.withUnsafeBytes { try Message.decode($0) }
        } catch {
            throw SpoolError(.protocolViolation, "\(Message.opCode) reply does not parse: \(error)")
        }
    }

    /// Throws ``SpoolError/Code/invalidTopicName`` unless `name` is 1–249 characters of
    /// `[A-Za-z0-9._-]` and not `.` or `..`: the broker's rule, checked without a round trip.
    public static func checkTopicName(_ name: String) throws(SpoolError) {
        do {
            _ = try TopicName(name)
        } catch {
            throw SpoolError(.invalidTopicName, error.message)
        }
    }

    func choosePartition(_ topic: String, key: [UInt8]?) async throws(SpoolError) -> Int32 {
        let count = try await partitionCount(of: topic)
        guard count > 1 else { return 0 }
        if let key { return Partitioner.partition(forKey: key, partitionCount: count) }
        return Int32(roundRobin.wrappingAdd(1, ordering: .relaxed).oldValue % UInt32(count))
    }

    /// The partition count of `topic`: from this client's one cache (shared by ``publish`` and
    /// every ``Producer`` of the client; filled by lookups and creations, cleared by deletions),
    /// else from the broker: a metadata request that creates the topic where the broker
    /// auto-creates topics (what publishing to it would do), and fails with "unknown topic" where
    /// it does not.
    func partitionCount(of topic: String) async throws(SpoolError) -> Int32 {
        if let count = partitionCounts.withLock({ $0[topic] }) { return count }
        let reply = try await call(.metadata, [MetadataRequest(topics: [topic], allowAutoCreation: true).encoded()])
        guard let described = try decode(MetadataResponse.self, reply).topics.first else {
            throw SpoolError(.protocolViolation, "the metadata reply for '\(topic)' names no topic")
        }
        switch described.errorCode {
        case .none: break
        case .unknownTopic: throw SpoolError(.unknownTopic, "topic '\(topic)' does not exist, and the broker does not create topics on use (auto.create.topics)")
        default: throw SpoolError(SpoolError.Code(described.errorCode), "the broker cannot describe topic '\(topic)': \(described.errorCode)")
        }
        let count = Int32(described.partitions.count)
        partitionCounts.withLock { $0[topic] = count }
        return count
    }
}

/// One fetch's answer (see ``SpoolClient/fetch(from:partition:offset:maxWait:)``).
public struct FetchedRecords: Sendable {
    /// The records at or after the requested offset, in offset order.
    public let records: [SpoolRecord]
    /// Where the next fetch continues: after the last batch returned (past any offsets the log
    /// cleaner emptied), or the requested offset when nothing came back.
    public let nextOffset: Int64
    /// The partition's visible end when the broker answered.
    public let logEndOffset: Int64
}

/// The records of a records frame and the offset after its last whole batch.
struct DecodedBatches {
    var records: [SpoolRecord] = []
    var nextOffset: Int64
}

/// Decodes the whole batches in `bytes`, keeping records at or after `offset`. A trailing
/// partial batch is ignored (the next fetch reads it whole).
private func decodeBatches(_ bytes: UnsafeRawBufferPointer, topic: String, partition: Int32, from offset: Int64) throws(WireError) -> DecodedBatches {
    var decoded = DecodedBatches(nextOffset: offset)
    var position = 0
    while bytes.count - position >= RecordBatch.headerSize {
        let rest = UnsafeRawBufferPointer(rebasing: bytes[position...])
        let header = try RecordBatch.readHeader(rest)
        guard header.totalSize <= rest.count else { break }
        let batch = UnsafeRawBufferPointer(rebasing: rest[..<header.totalSize])
        try RecordBatch.validate(batch)
        for record in try RecordBatch.records(in: batch) where record.offset >= offset {
            decoded.records.append(SpoolRecord(topic: topic, partition: partition, offset: record.offset, timestamp: record.timestamp,
                                               key: record.key, value: record.value, headers: record.headers))
        }
        decoded.nextOffset = max(decoded.nextOffset, header.nextOffset)
        position += header.totalSize
    }
    return decoded
}
