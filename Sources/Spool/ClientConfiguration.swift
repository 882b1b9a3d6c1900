import ZeroMQ

/// CURVE settings of a client: the broker's public key and this client's key pair (whose
/// public key the broker must admit, see `curve.clients` in `broker-config/spoold.yaml`).
public struct ClientCurve: Sendable, Hashable {
    /// The broker's public key (Z85).
    public var serverPublicKey: String
    /// This client's key pair.
    public var keys: CurveKeyPair

    public init(serverPublicKey: String, keys: CurveKeyPair) {
        self.serverPublicKey = serverPublicKey
        self.keys = keys
    }
}

/// Settings of a ``SpoolClient``. Every field has a default.
public struct ClientConfiguration: Sendable, Hashable {
    /// How long a request may wait for its reply (a fetch adds its own wait on top).
    /// Default: 30 seconds.
    public var requestTimeout: Duration
    /// How long ``SpoolClient/init(endpoint:configuration:logger:)`` waits for the broker's first
    /// answer; a refused connection fails at once. Default: 5 seconds.
    public var connectTimeout: Duration
    /// How long the broker may hold a fetch waiting for new records (long poll). Default: 10 seconds.
    public var fetchMaxWait: Duration
    /// Soft cap on the record bytes of one fetch reply. Default: 1 MiB.
    public var fetchMaxBytes: Int
    /// Largest batch one publish may send. The broker has its own limit (`max.batch.bytes`).
    /// Default: 1 MiB.
    public var maxBatchBytes: Int
    /// Encrypt and authenticate the connection with CURVE; nil for plaintext. Default: nil.
    public var curve: ClientCurve?

    public init(requestTimeout: Duration = .seconds(30), connectTimeout: Duration = .seconds(5),
                fetchMaxWait: Duration = .seconds(10), fetchMaxBytes: Int = 1 << 20, maxBatchBytes: Int = 1 << 20,
                curve: ClientCurve? = nil) {
        self.requestTimeout = requestTimeout
        self.connectTimeout = connectTimeout
        self.fetchMaxWait = fetchMaxWait
        self.fetchMaxBytes = fetchMaxBytes
        self.maxBatchBytes = maxBatchBytes
        self.curve = curve
    }
}
