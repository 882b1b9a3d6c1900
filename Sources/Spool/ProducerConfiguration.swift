/// Settings of a ``Producer``. Every field has a default; ``Producer/init(client:configuration:logger:)``
/// rejects values outside the documented ranges with ``SpoolError/Code/invalidArgument``.
public struct ProducerConfiguration: Sendable, Hashable {
    /// How long a partition's batch waits for more records after its first one before it is
    /// sent. A batch also leaves as soon as it holds ``batchBytes``, and ``Producer/flush()`` sends
    /// every batch at once. A batch whose linger has passed while the partition has
    /// ``maxInFlightPerPartition`` batches in flight keeps filling until one is acknowledged.
    /// Zero sends a batch as soon as it can leave. Default: 5 ms.
    public var linger: Duration
    /// Target size of one batch, header included: records accumulate per partition until the next
    /// one would not fit. A record larger than this travels alone. Capped at the client's
    /// ``ClientConfiguration/maxBatchBytes``. At least 128. Default: 256 KiB (under `fsync: always`
    /// one fdatasync covers at most a partition's batches in flight, so bigger batches mean more
    /// durable records per sync: 64 KiB gave 0.87 M records/s of 100 B here, 256 KiB 1.98 M).
    public var batchBytes: Int
    /// Batches of one partition sent and not yet acknowledged, 1 to 8 (the broker remembers the
    /// last 8 batches of each producer and partition, which is what makes a retried batch
    /// recognisable). Default: 5.
    public var maxInFlightPerPartition: Int
    /// Bound on the record bytes buffered or awaiting acknowledgement, over all partitions. While
    /// it is reached, ``Producer/send(to:partition:key:value:headers:timestamp:)`` and
    /// ``Producer/enqueue(to:partition:key:value:headers:timestamp:)`` wait (in call order); nothing
    /// is dropped. At least 1. Default: 32 MiB.
    public var maxBytesInFlight: Int
    /// How long a record may take from being buffered to being acknowledged, retries included;
    /// past it the record fails with ``SpoolError/Code/timedOut``, whose message gives the last
    /// error (for a full disk: "the disk is full (… free on …)"). A record that failed after the
    /// broker refused it was not stored; when its last attempt got no answer (still in flight, a
    /// timeout, a lost connection) the message says "the broker may have stored it". Also bounds
    /// the wait for a topic's metadata while the broker is unreachable. Default: 2 minutes.
    public var deliveryTimeout: Duration
    /// Wait before the first retry of a failed batch; it doubles with each failure in a row up
    /// to ``maxRetryBackoff`` and starts over after a success. Default: 50 ms.
    public var retryBackoff: Duration
    /// Longest wait between retries. Default: 2 seconds.
    public var maxRetryBackoff: Duration
    /// Stamp every batch with a producer id and a per-partition sequence, so the broker stores a
    /// retried batch once and rejects a batch that arrives after a lost one (which keeps
    /// partitions in order while several batches are in flight). Without it, a retry may store a
    /// batch twice, and with more than one batch in flight a retried batch may land after later
    /// ones: set ``maxInFlightPerPartition`` to 1 to keep order. Default: true.
    public var idempotent: Bool

    /// Creates a configuration; every parameter has the default documented on its property.
    public init(linger: Duration = .milliseconds(5), batchBytes: Int = 256 * 1024, maxInFlightPerPartition: Int = 5,
                maxBytesInFlight: Int = 32 << 20, deliveryTimeout: Duration = .seconds(120),
                retryBackoff: Duration = .milliseconds(50), maxRetryBackoff: Duration = .seconds(2), idempotent: Bool = true) {
        self.linger = linger
        self.batchBytes = batchBytes
        self.maxInFlightPerPartition = maxInFlightPerPartition
        self.maxBytesInFlight = maxBytesInFlight
        self.deliveryTimeout = deliveryTimeout
        self.retryBackoff = retryBackoff
        self.maxRetryBackoff = maxRetryBackoff
        self.idempotent = idempotent
    }

    /// The most batches per partition a producer may have in flight: the number of batches the
    /// broker remembers per producer and partition.
    public static let maxInFlightLimit = 8

    /// Throws ``SpoolError/Code/invalidArgument`` naming the first setting out of range.
    func validate() throws(SpoolError) {
        func fail(_ message: String) -> SpoolError { SpoolError(.invalidArgument, "invalid producer configuration: \(message)") }
        guard linger >= .zero else { throw fail("linger is negative (\(linger))") }
        guard batchBytes >= 128 else { throw fail("batchBytes is \(batchBytes), at least 128 is needed") }
        guard (1...Self.maxInFlightLimit).contains(maxInFlightPerPartition) else {
            throw fail("maxInFlightPerPartition is \(maxInFlightPerPartition); it must be 1 to \(Self.maxInFlightLimit) (the broker remembers the last \(Self.maxInFlightLimit) batches per producer and partition)")
        }
        guard maxBytesInFlight >= 1 else { throw fail("maxBytesInFlight is \(maxBytesInFlight), at least 1 is needed") }
        guard deliveryTimeout > .zero else { throw fail("deliveryTimeout must be positive, not \(deliveryTimeout)") }
        guard retryBackoff >= .zero, maxRetryBackoff >= retryBackoff else {
            throw fail("retryBackoff (\(retryBackoff)) must be between zero and maxRetryBackoff (\(maxRetryBackoff))")
        }
    }
}
