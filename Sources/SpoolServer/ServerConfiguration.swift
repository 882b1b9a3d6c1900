import SpoolBroker
import ZeroMQ

/// CURVE security of a server: its key pair, and the clients it admits by public key.
public struct CurveSecurity: Sendable, Hashable {
    /// The server's key pair; clients need its public key.
    public var serverKeys: CurveKeyPair
    /// Admitted clients: Z85 public key → name. The name is the client's identity in logs (and
    /// in access rules); a key not listed is refused during the handshake.
    public var clients: [String: String]

    public init(serverKeys: CurveKeyPair, clients: [String: String]) {
        self.serverKeys = serverKeys
        self.clients = clients
    }
}

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
    /// CURVE encryption and client authentication; nil for plaintext. Default: nil.
    public var curve: CurveSecurity?
    /// Without ``curve``, the server refuses to listen anywhere but loopback (`127.0.0.0/8`,
    /// `::1`, `localhost`), `inproc://` and `ipc://` unless this is true. Default: false.
    public var allowPlaintextNetwork: Bool

    public init(endpoint: String = "tcp://127.0.0.1:7070", broker: BrokerConfiguration = BrokerConfiguration(),
                maxFrameBytes: Int64 = 64 << 20, highWaterMark: Int32 = 10_000, curve: CurveSecurity? = nil,
                allowPlaintextNetwork: Bool = false) {
        self.endpoint = endpoint
        self.broker = broker
        self.maxFrameBytes = maxFrameBytes
        self.highWaterMark = highWaterMark
        self.curve = curve
        self.allowPlaintextNetwork = allowPlaintextNetwork
    }

    /// True when `endpoint` can only be reached from this machine.
    public var isLocalOnly: Bool {
        if endpoint.hasPrefix("inproc://") || endpoint.hasPrefix("ipc://") { return true }
        guard endpoint.hasPrefix("tcp://") else { return false }
        var host = endpoint.dropFirst("tcp://".count)
        if let colon = host.lastIndex(of: ":") { host = host[..<colon] }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        return host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}
