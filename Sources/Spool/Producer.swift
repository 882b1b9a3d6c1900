import Logging
import SpoolWire

/// Publishes records fast: it batches them per partition, keeps several batches in flight on
/// the client's connection, and retries what a lost connection or a restarting broker left
/// unacknowledged, without storing anything twice.
///
/// ```swift
/// let producer = try Producer(client: client)
/// for order in orders {
///     try await producer.enqueue(to: "orders", key: Array(order.id.utf8), value: order.json)   // returns once buffered
/// }
/// try await producer.flush()            // waits for every acknowledgement; throws the first failure
/// let result = try await producer.send(to: "orders", value: payload)   // one record, acknowledged
/// try await producer.close()
/// ```
///
/// **Two ways to publish.** ``send(to:partition:key:value:headers:timestamp:)`` returns the
/// record's ``PublishResult`` once the broker acknowledged it (or throws why it failed).
/// ``enqueue(to:partition:key:value:headers:timestamp:)`` returns as soon as the record is
/// buffered; its outcome is reported by the next ``flush()`` (or ``close()``), which throws the
/// first failure among the enqueued records since the previous flush. Both throw at once for a
/// record that can never be sent (too large, invalid topic name, nonexistent partition, closed
/// producer). Neither ever drops a record silently.
///
/// **Partitioning** is the client's: an explicit `partition`; else a keyed record goes to
/// ``Partitioner/partition(forKey:partitionCount:)`` (murmur2, as Kafka); else unkeyed records
/// *stick* to one partition until its batch closes, then move to the next (Kafka's sticky
/// partitioner: full batches, even spread over time). A topic's partition count is looked up on
/// its first record (which creates the topic if the broker auto-creates topics).
///
/// **Batching.** Records of a partition accumulate into one batch until it reaches
/// ``ProducerConfiguration/batchBytes`` or its first record has waited
/// ``ProducerConfiguration/linger``; ``flush()`` sends at once. Up to
/// ``ProducerConfiguration/maxInFlightPerPartition`` batches per partition travel at once,
/// pipelined in order on the client's connection (the broker handles a connection's requests
/// in order); while they all are in flight, the next batch keeps filling, so batches grow with
/// the load and the broker's acknowledgement time.
///
/// **Order and idempotence.** Records of one partition are stored in the order they were
/// buffered. With ``ProducerConfiguration/idempotent`` (the default) the producer asks the
/// broker for a producer id on first use and stamps each batch with it and the partition's next
/// sequence number. When a batch fails retriably (lost connection, timeout, broker restarting,
/// storage error), the producer waits ``ProducerConfiguration/retryBackoff`` (doubling up to
/// ``ProducerConfiguration/maxRetryBackoff``) and resends that batch and every later unsettled
/// batch of the partition, in order and with their original sequences: the broker answers a batch
/// it already stored with its first acknowledgement (or with "duplicate sequence" when it no
/// longer knows the offset: such a record's ``PublishResult/baseOffset`` is -1) and refuses a
/// batch that arrives after a missing one, so each record is stored once and in order. A batch
/// refused for good (too large for the broker, unknown topic, not authorized) fails with the
/// broker's code and a message naming topic and partition; the partition's later batches go on
/// (the broker names the sequence it expected, and the unstored batches move down to it).
/// Without idempotence a retry may store a batch twice and, with several batches in flight,
/// after later ones.
///
/// **Bounds.** Buffered and unacknowledged records take at most
/// ``ProducerConfiguration/maxBytesInFlight`` bytes; callers wait (first come, first served)
/// while it is full. A record not acknowledged within ``ProducerConfiguration/deliveryTimeout``
/// of being buffered fails with ``SpoolError/Code/timedOut``, saying how long and after how many
/// attempts; if an attempt went unanswered, the broker may have stored it all the same.
///
/// **Lifecycle.** A background task (on its own serial executor) starts with the first record
/// and ends at ``close()``, which sends what is buffered first; dropping the last reference to a
/// producer closes it the same way without waiting. The producer shares its ``SpoolClient``; close
/// the producer before the client.
///
/// Thread-safe: call any method from any task, concurrently. Records buffered by one task are
/// kept in that task's order.
public final class Producer: Sendable {
    /// The client whose connection carries the batches.
    public let client: SpoolClient
    /// The settings in force (``ProducerConfiguration/batchBytes`` capped at the client's
    /// ``ClientConfiguration/maxBatchBytes``).
    public let configuration: ProducerConfiguration
    let core: ProducerCore

    /// Creates a producer on `client`. Nothing is sent until the first record. Throws
    /// ``SpoolError/Code/invalidArgument`` naming a setting out of its range.
    public init(client: SpoolClient, configuration: ProducerConfiguration = ProducerConfiguration(),
                logger: Logger = Logger(label: "spool.producer")) throws(SpoolError) {
        try configuration.validate()
        var configuration = configuration
        configuration.batchBytes = min(configuration.batchBytes, client.configuration.maxBatchBytes)
        self.client = client
        self.configuration = configuration
        core = ProducerCore(client: client, configuration: configuration, logger: logger)
    }

    deinit { core.beginClose() }

    /// Publishes one record and returns where it landed once the broker acknowledged it
    /// (``PublishResult/count`` is 1; ``PublishResult/baseOffset`` is the record's offset, or -1
    /// if the broker recognised a retry whose first acknowledgement was lost).
    ///
    /// The record is batched like any other: it waits up to ``ProducerConfiguration/linger`` for
    /// company (set the linger to zero for the lowest latency; many concurrent `send`s share
    /// batches). Waits while ``ProducerConfiguration/maxBytesInFlight`` is reached. Throws at once
    /// ``SpoolError/Code/recordTooLarge`` (over the client's ``ClientConfiguration/maxBatchBytes``),
    /// ``SpoolError/Code/invalidTopicName``, ``SpoolError/Code/unknownPartition`` or
    /// ``SpoolError/Code/clientClosed`` (producer closed); later, the broker's error for the batch,
    /// or ``SpoolError/Code/timedOut`` after ``ProducerConfiguration/deliveryTimeout``. Cancelling
    /// the task stops the wait for room (``SpoolError/Code/cancelled``); a record already
    /// buffered is delivered anyway and the call waits for its outcome.
    @discardableResult
    nonisolated(nonsending) public func send(to topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: [UInt8],
                     headers: [RecordHeader] = [], timestamp: Int64? = nil) async throws(SpoolError) -> PublishResult {
        try await core.send(topic: topic, partition: partition, key: key, value: value, headers: headers, timestamp: timestamp)
    }

    /// Sends `records` as one batch to `key`'s partition of `topic` (records without a key get
    /// `key`), appended only if the last record of `key` there is at `expectedLastOffset` (nil:
    /// `key` has no record yet): the broker checks and appends in one step, so of two writers that
    /// read the same last offset exactly one succeeds (an event store's expected version).
    /// Returns where the batch landed (its last record, `baseOffset + count - 1`, is the key's
    /// new last offset). Idempotent like every send: a retried batch is answered with its
    /// original offset, never refused by its own first attempt. The batch goes after the
    /// records buffered for the partition before it and does not wait for room.
    ///
    /// Throws ``SpoolError/Code/keyConflict`` when the key's last offset is another one
    /// (`details["lastOffset"]`, -1 for none): nothing was stored; read the key again
    /// (``SpoolClient/records(ofKey:in:from:)``) and decide anew. Otherwise throws like
    /// ``send(to:partition:key:value:headers:timestamp:)``.
    @discardableResult
    nonisolated(nonsending) public func send(to topic: String, key: [UInt8], records: [OutgoingRecord],
                                             ifLastOffsetIs expectedLastOffset: Int64?) async throws(SpoolError) -> PublishResult {
        try await core.send(topic: topic, key: key, records: records, condition: KeyCondition(key: key, lastOffset: expectedLastOffset ?? -1))
    }

    /// Buffers one record for sending and returns as soon as it is buffered: at once unless
    /// ``ProducerConfiguration/maxBytesInFlight`` is reached, in which case it waits for room.
    /// Its outcome is reported by the next ``flush()`` or ``close()``.
    ///
    /// Runs on the caller's executor (no hop off an actor), and buffering takes no task switch.
    ///
    /// Throws at once for a record that can never be sent (the same errors as
    /// ``send(to:partition:key:value:headers:timestamp:)``), and ``SpoolError/Code/cancelled`` if
    /// the task is cancelled while waiting for room (the record is then not buffered).
    /// `timestamp` is in milliseconds since the epoch; nil means now.
    @inline(__always)
    nonisolated(nonsending) public func enqueue(to topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: [UInt8],
                        headers: [RecordHeader] = [], timestamp: Int64? = nil) async throws(SpoolError) {
        try await core.enqueue(topic: topic, partition: partition, key: key, value: value, headers: headers, timestamp: timestamp)
    }

    /// Sends every buffered record at once (without waiting for the linger) and returns when all
    /// records buffered before the call are acknowledged or failed. Throws the first failure among
    /// the records buffered with ``enqueue(to:partition:key:value:headers:timestamp:)`` since the
    /// previous flush (its message says how many failed), then forgets it. Records sent with
    /// ``send(to:partition:key:value:headers:timestamp:)`` report to their caller only.
    public func flush() async throws(SpoolError) {
        try await core.flush()
    }

    /// Stops accepting records (later calls fail with ``SpoolError/Code/clientClosed``), sends
    /// everything buffered, waits until it is acknowledged or failed, and stops the background
    /// task. Throws like ``flush()``. Calling it again returns at once. Does not close the client.
    public func close() async throws(SpoolError) {
        try await core.close()
    }
}
