/// Settings of `spoold`'s HTTP listener (`http.*` in `spoold.yaml`).
public struct ConsoleConfiguration: Sendable, Hashable {
    /// Address to bind. Default: `127.0.0.1`.
    public var host: String
    /// Port to bind; 0 picks a free one (reported by ``ConsoleServer/boundPort``). Default: 7071.
    public var port: Int
    /// True lets the console act (commit an offset reset, replay dead letters); read-only otherwise. Default: false.
    public var admin: Bool
    /// The bearer token `/metrics` and `/api/*` require; nil for none. Default: nil.
    public var token: String?

    /// A listener on `host:port`.
    public init(host: String = "127.0.0.1", port: Int = 7071, admin: Bool = false, token: String? = nil) {
        self.host = host
        self.port = port
        self.admin = admin
        self.token = token
    }

    /// True when the listener can only be reached from this machine.
    public var isLoopback: Bool { host == "localhost" || host == "::1" || host.hasPrefix("127.") }
}

/// What the broker says about itself on the console's status page.
public struct BrokerFacts: Sendable, Hashable, Encodable {
    /// The broker's version.
    public var version: String
    /// The ZeroMQ endpoint it listens on.
    public var endpoint: String
    /// Its data directory.
    public var dataDirectory: String
    /// Its default fsync policy.
    public var fsync: String
    /// When it started, ms since the epoch.
    public var startedAt: Int64

    public init(version: String, endpoint: String, dataDirectory: String, fsync: String, startedAt: Int64) {
        self.version = version
        self.endpoint = endpoint
        self.dataDirectory = dataDirectory
        self.fsync = fsync
        self.startedAt = startedAt
    }
}
