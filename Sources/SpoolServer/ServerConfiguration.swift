import SpoolBroker

/// Settings of a ``SpoolServer``: where it listens, transport limits, and the broker's own settings.
public struct ServerConfiguration: Sendable, Hashable {
    /// The endpoint the ROUTER socket binds (`tcp://host:port`, `inproc://name`, `ipc://path`).
    /// `tcp://127.0.0.1:*` picks a free port; ``SpoolServer/start()`` returns the real one.
    /// Default: `tcp://127.0.0.1:7070`.
    public var endpoint: String
    /// Broker settings (data directory, topics, fsync policy, limits).
    public var broker: BrokerConfiguration
    /// Largest frame accepted from the network; a peer sending more is disconnected by ZeroMQ
    /// before the bytes reach memory. Batches below this but above the broker's `maxBatchBytes`
    /// get a clear "record too large" reply instead. Default: 64 MiB.
    public var maxFrameBytes: Int64
    /// Messages queued per client in each direction before ZeroMQ stops accepting more
    /// (inbound) or replies to a client that does not read are dropped (outbound). Default: 10,000.
    public var highWaterMark: Int32

    public init(endpoint: String = "tcp://127.0.0.1:7070", broker: BrokerConfiguration = BrokerConfiguration(),
                maxFrameBytes: Int64 = 64 << 20, highWaterMark: Int32 = 10_000) {
        self.endpoint = endpoint
        self.broker = broker
        self.maxFrameBytes = maxFrameBytes
        self.highWaterMark = highWaterMark
    }
}
